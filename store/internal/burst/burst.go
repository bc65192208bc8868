// Package burst drives a store from child processes for the crash-safety and
// multi-worker tests: the test binary re-executes itself in a child mode
// (see ChildMain), the parent kills children with SIGKILL at chosen moments,
// then checks the store's rows for consistency.
//
// Two child modes:
//   - crash: an endless burst of checks, transitions and batched checks on a
//     few domains, printing "ok N" after each commit;
//   - worker: a scheduler worker with a fake, deterministic checker (no
//     network), claiming due domains for one round at an injected time.
package burst

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// Environment of a child process.
const (
	EnvMode   = "STARTTLS_PRELOAD_STORE_CHILD" // "crash" or "worker"
	EnvTarget = "STARTTLS_PRELOAD_STORE_TARGET"
	EnvWorker = "STARTTLS_PRELOAD_STORE_WORKER" // worker name
	EnvNow    = "STARTTLS_PRELOAD_STORE_NOW"    // RFC 3339 time of the round
	EnvRound  = "STARTTLS_PRELOAD_STORE_ROUND"
	EnvHang   = "STARTTLS_PRELOAD_STORE_HANG" // worker: hang holding its second claim
)

// Parameters shared by the parent and its children.
const (
	Lease    = 10 * time.Minute
	Interval = 24 * time.Hour
	Batch    = 100
)

// T0 is the time at which the seeded domains are first due.
var T0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

// Name is the i-th seeded domain's name.
func Name(i int) string { return fmt.Sprintf("d%05d.example", i) }

// Seed adds n domains in state st, due at T0.
func Seed(ctx context.Context, s store.Store, n int, st store.State) error {
	ds := make([]store.Domain, n)
	for i := range ds {
		ds[i] = store.Domain{Name: Name(i), State: st, MXPatterns: []string{"mx.example.net"}, CreatedAt: T0, NextCheck: T0}
	}
	errs, err := s.AddDomains(ctx, ds)
	if err != nil {
		return err
	}
	return errors.Join(errs...)
}

// IsChild reports whether this process is a child started by Spawn.
func IsChild() bool { return os.Getenv(EnvMode) != "" }

// ChildMain runs the child mode named in the environment against the store
// open returns, and gives the exit code.
func ChildMain(open func(ctx context.Context, target string) (store.Store, error)) int {
	ctx := context.Background()
	s, err := open(ctx, os.Getenv(EnvTarget))
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open:", err)
		return 3
	}
	defer s.Close()
	switch os.Getenv(EnvMode) {
	case "crash":
		err = Crash(ctx, s, os.Stdout)
	case "bigbatch":
		err = BigBatch(ctx, s, os.Stdout)
	case "worker":
		var now time.Time
		now, err = time.Parse(time.RFC3339Nano, os.Getenv(EnvNow))
		if err == nil {
			round, _ := strconv.Atoi(os.Getenv(EnvRound))
			err = Worker(ctx, s, os.Getenv(EnvWorker), round, now, os.Getenv(EnvHang) != "", os.Stdin, os.Stdout)
		}
	default:
		err = fmt.Errorf("unknown mode %q", os.Getenv(EnvMode))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	return 0
}

// The crash burst cycles every domain testing → enforce → demoted → testing.
var cycle = map[store.State]store.State{
	store.StateTesting: store.StateEnforce,
	store.StateEnforce: store.StateDemoted,
	store.StateDemoted: store.StateTesting,
}

// CrashDomains is how many domains the crash burst works on.
const CrashDomains = 20

type marker struct {
	Transition bool `json:"transition"`
}

func update(d store.Domain, at time.Time, move bool) store.CheckUpdate {
	f, _ := json.Marshal(marker{move})
	u := store.CheckUpdate{
		Check:        store.CheckRecord{Domain: d.Name, At: at, Eligible: true, MXHosts: []string{"mx.example.net"}, Findings: f},
		NextCheck:    at,
		ChecksPassed: d.ChecksPassed + 1,
		PassingSince: &at,
	}
	if move {
		u.Transition = &store.Transition{From: d.State, To: cycle[d.State], Reason: "check: moved"}
	}
	return u
}

// Crash writes forever: single checks (every other one with a transition),
// batches of checks, and bare transitions, printing "ok N" after each
// commit. Every check raises the domain's ChecksPassed by one, so a
// consistent store has ChecksPassed equal to its number of check rows.
func Crash(ctx context.Context, s store.Store, out io.Writer) error {
	w := bufio.NewWriter(out)
	clock := time.Now().UTC()
	tick := func() time.Time { clock = clock.Add(time.Microsecond); return clock }
	for n := 0; ; n++ {
		switch n % 3 {
		case 0, 1:
			d, err := s.GetDomain(ctx, Name(n%CrashDomains))
			if err != nil {
				return err
			}
			if err := s.RecordCheck(ctx, update(d, tick(), n%2 == 0)); err != nil {
				return err
			}
		case 2:
			var us []store.CheckUpdate
			for k := range 5 {
				d, err := s.GetDomain(ctx, Name((n+k)%CrashDomains))
				if err != nil {
					return err
				}
				us = append(us, update(d, tick(), k%2 == 1))
			}
			errs, err := s.RecordChecks(ctx, us)
			if err != nil {
				return err
			}
			for _, err := range errs {
				if err != nil {
					return err
				}
			}
			d, err := s.GetDomain(ctx, Name(n%CrashDomains))
			if err != nil {
				return err
			}
			if err := s.Transition(ctx, d.Name, d.State, cycle[d.State], "manual", tick()); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "ok %d\n", n)
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// BigBatchSize is how many checks BigBatch writes in one transaction.
const BigBatchSize = 5000

// BigBatch writes BigBatchSize checks (half of them moving the state) on the
// crash domains in one RecordChecks transaction, printing "begin" before
// and "done" after it: a parent that kills the process on "begin" kills it
// in the middle of a long transaction.
func BigBatch(ctx context.Context, s store.Store, out io.Writer) error {
	doms := make([]store.Domain, CrashDomains)
	for i := range doms {
		d, err := s.GetDomain(ctx, Name(i))
		if err != nil {
			return err
		}
		doms[i] = d
	}
	clock := time.Now().UTC()
	us := make([]store.CheckUpdate, BigBatchSize)
	for i := range us {
		d := &doms[i%CrashDomains]
		clock = clock.Add(time.Microsecond)
		us[i] = update(*d, clock, i%2 == 0)
		d.ChecksPassed++
		if i%2 == 0 {
			d.State = cycle[d.State]
		}
	}
	fmt.Fprintln(out, "begin")
	errs, err := s.RecordChecks(ctx, us)
	if err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintln(out, "done")
	return nil
}

// ChecksAfter is how many check rows the first n commits of a Crash burst
// write.
func ChecksAfter(n int) int {
	c := 0
	for i := range n {
		if i%3 == 2 {
			c += 5
		} else {
			c++
		}
	}
	return c
}

// VerifyCrash checks the invariants the crash burst keeps, for domains that
// started in state testing with no checks:
//   - ChecksPassed equals the number of check rows, and LastChecked is the
//     latest check's time (the counters and the check row were written
//     together);
//   - the decisions chain from testing, each From the previous To, and end
//     in the domain's state (no transition lost or half-applied);
//   - every check marked as moving has a decision at its time and every
//     "check:" decision has a check at its time (a check and its transition
//     were written together).
//
// It returns the numbers of checks and decisions seen.
func VerifyCrash(ctx context.Context, s store.Store, n int) (checks, decisions int, err error) {
	var problems []string
	for i := range n {
		d, err := s.GetDomain(ctx, Name(i))
		if err != nil {
			return 0, 0, err
		}
		cs, err := s.Checks(ctx, d.Name, time.Time{}, 0)
		if err != nil {
			return 0, 0, err
		}
		ds, err := s.Decisions(ctx, d.Name)
		if err != nil {
			return 0, 0, err
		}
		checks += len(cs)
		decisions += len(ds)
		if d.ChecksPassed != len(cs) {
			problems = append(problems, fmt.Sprintf("%s: ChecksPassed %d but %d check rows", d.Name, d.ChecksPassed, len(cs)))
		}
		if len(cs) > 0 && (d.LastChecked == nil || !d.LastChecked.Equal(cs[0].At)) {
			problems = append(problems, fmt.Sprintf("%s: LastChecked %v, latest check %v", d.Name, d.LastChecked, cs[0].At))
		}
		st := store.StateTesting
		decAt := map[int64]bool{}
		for _, dec := range ds {
			if dec.From != st {
				problems = append(problems, fmt.Sprintf("%s: decision %d from %s, but the state was %s", d.Name, dec.ID, dec.From, st))
			}
			st = dec.To
			if strings.HasPrefix(dec.Reason, "check:") {
				decAt[dec.At.UnixMicro()] = true
			}
		}
		if st != d.State {
			problems = append(problems, fmt.Sprintf("%s: state %s, decisions end in %s", d.Name, d.State, st))
		}
		checkAt := map[int64]bool{}
		for _, c := range cs {
			var m marker
			if err := json.Unmarshal(c.Findings, &m); err != nil {
				problems = append(problems, fmt.Sprintf("%s: check %d findings: %v", d.Name, c.ID, err))
			}
			if m.Transition {
				checkAt[c.At.UnixMicro()] = true
				if !decAt[c.At.UnixMicro()] {
					problems = append(problems, fmt.Sprintf("%s: check %d at %v moved the state but has no decision", d.Name, c.ID, c.At))
				}
			}
		}
		for at := range decAt {
			if !checkAt[at] {
				problems = append(problems, fmt.Sprintf("%s: decision at %v has no check", d.Name, time.UnixMicro(at).UTC()))
			}
		}
	}
	if len(problems) > 0 {
		if len(problems) > 20 {
			problems = append(problems[:20], fmt.Sprintf("… and %d more", len(problems)-20))
		}
		return checks, decisions, errors.New(strings.Join(problems, "\n"))
	}
	return checks, decisions, nil
}

// Outcome is the fake checker: whether a domain passes in a round, the
// same answer in every process.
func Outcome(name string, round int) bool {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", name, round)
	return h.Sum32()%5 != 0
}

// Next is the state machine of the worker test: a pass moves validating →
// testing → enforce and demoted → testing; a failure demotes a listed
// domain. It returns from when nothing changes.
func Next(from store.State, pass bool) store.State {
	switch {
	case pass && from == store.StateValidating, pass && from == store.StateDemoted:
		return store.StateTesting
	case pass && from == store.StateTesting:
		return store.StateEnforce
	case !pass && (from == store.StateTesting || from == store.StateEnforce):
		return store.StateDemoted
	}
	return from
}

// Worker checks, for one round at time now, every due domain it can claim,
// in batches, recording each check with the state transition Next gives.
// It prints "claimed N" after each claim. When nothing is left to claim it
// prints "idle" and reads a line from in: "now TIME" continues at a later
// time (to pick up expired claims), end of input ends the worker. With hang
// set it stops after its second claim, holding the claim, until killed.
func Worker(ctx context.Context, s store.Store, name string, round int, now time.Time, hang bool, in io.Reader, out io.Writer) error {
	lines := bufio.NewScanner(in)
	claims := 0
	for {
		ds, err := s.ClaimDue(ctx, name, now, Batch, Lease)
		if err != nil {
			return err
		}
		claims++
		fmt.Fprintf(out, "claimed %d\n", len(ds))
		if hang && claims == 2 {
			select {} // killed by the parent while holding the claim
		}
		if len(ds) == 0 {
			fmt.Fprintln(out, "idle")
			if !lines.Scan() {
				return lines.Err()
			}
			v, ok := strings.CutPrefix(lines.Text(), "now ")
			if !ok {
				return fmt.Errorf("unexpected input %q", lines.Text())
			}
			if now, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return err
			}
			continue
		}
		us := make([]store.CheckUpdate, len(ds))
		for i, d := range ds {
			pass := Outcome(d.Name, round)
			u := store.CheckUpdate{
				Check:     store.CheckRecord{Domain: d.Name, At: now, Eligible: pass, MXHosts: []string{"mx.example.net"}, Worker: name},
				NextCheck: now.Add(Interval),
			}
			if pass {
				u.ChecksPassed = d.ChecksPassed + 1
			}
			if to := Next(d.State, pass); to != d.State {
				u.Transition = &store.Transition{From: d.State, To: to, Reason: fmt.Sprintf("round %d", round)}
			}
			us[i] = u
		}
		errs, err := s.RecordChecks(ctx, us)
		if err != nil {
			return err
		}
		for i, err := range errs {
			if err != nil {
				return fmt.Errorf("%s: %w", us[i].Check.Domain, err)
			}
		}
	}
}
