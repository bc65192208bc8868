package burst

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// Open opens the store a scenario works on, for the parent process.
type Open func(ctx context.Context, target string) (store.Store, error)

func mustOpen(t testing.TB, open Open, target string) store.Store {
	t.Helper()
	s, err := open(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// CrashScenario seeds the store, then several times runs a crash child,
// kills it with SIGKILL in the middle of its burst of writes, reopens the
// store and verifies it (VerifyCrash). check, if not nil, runs backend
// checks (an integrity check) on the reopened store. Last it kills a child
// inside one long transaction, once inTx reports that the child's write
// transaction is open (the database's own view), and finds all of it or
// none.
func CrashScenario(t *testing.T, open Open, target string, check func(t *testing.T, s store.Store), inTx func(t *testing.T) bool) {
	ctx := context.Background()
	s := mustOpen(t, open, target)
	if err := Seed(ctx, s, CrashDomains, store.StateTesting); err != nil {
		t.Fatal(err)
	}
	s.Close()
	acked, inflight := 0, 0
	for kill, after := range []int{40, 97, 153} {
		c := Spawn(t, EnvMode+"=crash", EnvTarget+"="+target)
		last := ""
		for range after {
			last = c.Expect("ok ")
		}
		for _, l := range c.Kill() {
			if strings.HasPrefix(l, "ok ") {
				last = l
			}
		}
		// "ok N" follows the commit of operation N.
		committed, err := strconv.Atoi(strings.TrimPrefix(last, "ok "))
		if err != nil {
			t.Fatalf("child wrote %q", last)
		}
		committed++
		s := mustOpen(t, open, target)
		if check != nil {
			check(t, s)
		}
		checks, decisions, err := VerifyCrash(ctx, s, CrashDomains)
		s.Close()
		if err != nil {
			t.Fatalf("after kill %d: inconsistent store:\n%v", kill+1, err)
		}
		// Every acknowledged commit survived; at most the one in flight
		// when the process died was added.
		acked += ChecksAfter(committed)
		inflight = ChecksAfter(committed+1) - ChecksAfter(committed)
		if checks < acked || checks > acked+inflight {
			t.Fatalf("after kill %d: %d checks, want %d acknowledged (+%d in flight)", kill+1, checks, acked, inflight)
		}
		acked = checks
		t.Logf("kill %d after %d commits: %d checks and %d decisions, consistent", kill+1, committed, checks, decisions)
	}

	// A kill in the middle of one long transaction: all of it or none.
	c := Spawn(t, EnvMode+"=bigbatch", EnvTarget+"="+target)
	c.Expect("begin")
	// Poll (the child is another process) until its transaction is open.
	deadline := time.Now().Add(time.Minute)
	for !inTx(t) {
		if time.Now().After(deadline) {
			t.Fatal("the child's transaction never showed")
		}
		runtime.Gosched()
	}
	finished := false
	for _, l := range c.Kill() {
		finished = finished || l == "done"
	}
	s = mustOpen(t, open, target)
	if check != nil {
		check(t, s)
	}
	checks, decisions, err := VerifyCrash(ctx, s, CrashDomains)
	s.Close()
	if err != nil {
		t.Fatalf("after a kill inside a transaction: inconsistent store:\n%v", err)
	}
	want := acked
	if finished {
		want += BigBatchSize
	}
	if checks != want {
		t.Fatalf("after a kill inside a %d-check transaction: %d checks, want %d (all or none; finished: %v)", BigBatchSize, checks, want, finished)
	}
	t.Logf("kill inside a %d-check transaction (finished: %v): %d checks and %d decisions, consistent", BigBatchSize, finished, checks, decisions)
}

// WorkersScenario runs two rounds over n domains with 4 worker processes
// and shows that every due domain is checked exactly once per round and no
// transition is lost. In the second round one worker is killed while it
// holds a claim; once its lease has expired (the workers' injected clock is
// moved past it) the others pick its domains up.
func WorkersScenario(t *testing.T, open Open, target string, n int) {
	ctx := context.Background()
	s := mustOpen(t, open, target)
	defer s.Close()
	if err := Seed(ctx, s, n, store.StateValidating); err != nil {
		t.Fatal(err)
	}
	worker := func(name string, round int, now time.Time, hang bool) *Child {
		env := []string{EnvMode + "=worker", EnvTarget + "=" + target, EnvWorker + "=" + name,
			EnvRound + "=" + fmt.Sprint(round), EnvNow + "=" + now.Format(time.RFC3339Nano)}
		if hang {
			env = append(env, EnvHang+"=1")
		}
		return Spawn(t, env...)
	}
	expected := make([]store.State, n)
	for i := range expected {
		expected[i] = store.StateValidating
	}

	// Round 1: four workers, nobody dies.
	now1 := T0
	var ws []*Child
	for w := range 4 {
		ws = append(ws, worker(fmt.Sprintf("w%d", w), 1, now1, false))
	}
	for _, c := range ws {
		c.Expect("idle")
		c.CloseInput()
	}
	for _, c := range ws {
		c.Wait()
	}
	for i := range expected {
		expected[i] = Next(expected[i], Outcome(Name(i), 1))
	}
	verifyRound(t, s, n, now1, expected, 1, nil)

	// Round 2: the victim claims twice and hangs holding its second claim.
	now2 := T0.Add(Interval)
	victim := worker("victim", 2, now2, true)
	victim.Expect("claimed")
	victim.Expect("claimed")
	ws = nil
	for w := range 3 {
		ws = append(ws, worker(fmt.Sprintf("w%d", w), 2, now2, false))
	}
	victim.Kill() // mid-round: the others are running
	held := map[string]bool{}
	for _, c := range ws {
		c.Expect("idle")
	}
	all, err := s.ListDomains(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if d.ClaimedBy == "victim" {
			held[d.Name] = true
			if d.LastChecked != nil && !d.LastChecked.Before(now2) {
				t.Errorf("%s: held by the dead worker but checked at %v", d.Name, d.LastChecked)
			}
		} else if d.LastChecked == nil || d.LastChecked.Before(now2) {
			t.Errorf("%s: not checked in round 2 though not held by the dead worker", d.Name)
		}
	}
	if len(held) != Batch {
		t.Fatalf("the dead worker holds %d claims, want %d", len(held), Batch)
	}
	// The lease expires: the survivors' clock moves past it.
	for _, c := range ws {
		c.Send("now " + now2.Add(Lease).Format(time.RFC3339Nano))
		c.Expect("claimed")
	}
	for _, c := range ws {
		c.Expect("idle")
		c.CloseInput()
	}
	for _, c := range ws {
		c.Wait()
	}
	for i := range expected {
		expected[i] = Next(expected[i], Outcome(Name(i), 2))
	}
	verifyRound(t, s, n, now2, expected, 2, held)
	t.Logf("%d domains, 2 rounds, 4 workers: each due domain checked once per round; %d claims of the killed worker picked up after its lease", n, len(held))
}

// verifyRound checks that every domain has exactly one check at or after
// since (and `round` checks in all), the expected state, and decisions that
// chain from validating to it.
// Domains in held were claimed by the killed worker "victim": their check
// must come from another worker.
func verifyRound(t *testing.T, s store.Store, n int, since time.Time, expected []store.State, round int, held map[string]bool) {
	t.Helper()
	ctx := context.Background()
	var mu sync.Mutex
	bad := 0
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		bad++
		if bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	// Eight readers at once: the store answers one query per domain.
	var wg sync.WaitGroup
	for r := range 8 {
		wg.Go(func() {
			for i := r; i < n; i += 8 {
				if err := verifyDomain(ctx, s, i, since, expected[i], round, held, fail); err != nil {
					fail("%s: %v", Name(i), err)
					return
				}
			}
		})
	}
	wg.Wait()
	if bad > 20 {
		t.Errorf("… %d problems in all", bad)
	}
}

func verifyDomain(ctx context.Context, s store.Store, i int, since time.Time, expected store.State, round int, held map[string]bool, fail func(string, ...any)) error {
	name := Name(i)
	d, err := s.GetDomain(ctx, name)
	if err != nil {
		return err
	}
	cs, err := s.Checks(ctx, name, time.Time{}, 0)
	if err != nil {
		return err
	}
	inRound := 0
	for _, c := range cs {
		if !c.At.Before(since) {
			inRound++
			if held[name] && (c.Worker == "victim" || c.Worker == "") {
				fail("%s: held by the killed worker, but its round %d check is by %q", name, round, c.Worker)
			}
		}
	}
	if inRound != 1 || len(cs) != round {
		fail("%s: %d checks in round %d (%d in all), want exactly 1 (%d)", name, inRound, round, len(cs), round)
	}
	if d.State != expected {
		fail("%s: state %s, want %s", name, d.State, expected)
	}
	ds, err := s.Decisions(ctx, name)
	if err != nil {
		return err
	}
	st := store.StateValidating
	for _, dec := range ds {
		if dec.From != st {
			fail("%s: decision from %s, state was %s", name, dec.From, st)
		}
		st = dec.To
	}
	if st != d.State {
		fail("%s: decisions end in %s, state is %s", name, st, d.State)
	}
	if d.ClaimedBy != "" {
		fail("%s: still claimed by %s after the round", name, d.ClaimedBy)
	}
	return nil
}
