package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

// Checker checks one domain. A *validate.Round is one (and so is a
// *validate.Validator); an error means the checker itself could not work.
type Checker interface {
	Check(ctx context.Context, domain string) (*validate.Result, error)
}

var (
	_ Checker = (*validate.Round)(nil)
	_ Checker = (*validate.Validator)(nil)
)

// Config configures a Scheduler. Store, NewRound and Now are required.
type Config struct {
	Store store.Store
	// NewRound starts a round of checks: checks made through one Checker
	// share each MX address's result (validate.Validator.NewRound).
	NewRound func() Checker
	Now      func() time.Time
	Rules    Rules

	// CheckInterval is how often a validating domain is checked;
	// ListedInterval how often a listed one is (shorter).
	CheckInterval  time.Duration
	ListedInterval time.Duration
	// Jitter spreads the next check time by up to this fraction of the
	// interval, either way (0.1 by default; negative: none).
	Jitter float64

	Worker      string        // this worker's name in claims
	Lease       time.Duration // how long a claim lasts (30 minutes by default)
	Batch       int           // domains claimed and recorded at once (5000)
	Concurrency int           // domains checked at once (64)
	// OptOut names domains that are never probed, besides the store's
	// opt-out list.
	OptOut []string

	Notifier Notifier // nil: LogNotifier
	Metrics  *Metrics // nil: none
	Log      *slog.Logger
}

// Scheduler runs rounds of checks: it claims the due domains, checks them,
// folds each result into the domain (Rules.Evaluate) and records the check,
// the domain's new summary and any transition in one transaction.
type Scheduler struct {
	cfg    Config
	optOut map[string]bool
	log    *slog.Logger
	// writes serialises the round's own store writes (claims, records,
	// releases): on SQLite two writers would only wait for each other in
	// the busy handler's sleeps.
	writes sync.Mutex

	statesMu sync.Mutex
	counted  time.Time // when the states were last counted for the metrics
}

// NewScheduler checks cfg and fills in defaults.
func NewScheduler(cfg Config) (*Scheduler, error) {
	if cfg.Store == nil || cfg.NewRound == nil || cfg.Now == nil {
		return nil, fmt.Errorf("%w: scheduler needs a store, a checker and a clock", ErrInvalid)
	}
	if cfg.Rules == (Rules{}) {
		cfg.Rules = DefaultRules()
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = 6 * time.Hour
	}
	if cfg.ListedInterval <= 0 {
		cfg.ListedInterval = min(time.Hour, cfg.CheckInterval)
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = 0.1
	}
	if cfg.Worker == "" {
		cfg.Worker = "serve"
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 5000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Notifier == nil {
		cfg.Notifier = LogNotifier{Log: cfg.Log}
	}
	s := &Scheduler{cfg: cfg, optOut: make(map[string]bool), log: cfg.Log}
	for _, d := range cfg.OptOut {
		s.optOut[normalizeHost(d)] = true
	}
	return s, nil
}

// Rules returns the scheduler's rules.
func (s *Scheduler) Rules() Rules { return s.cfg.Rules }

// RoundStats says what a round did.
type RoundStats struct {
	Claimed     int // domains claimed
	Checked     int // domains checked over the network (through the round's shared results)
	Passed      int
	Failed      int
	Errors      int // the checker could not work; released for a retry
	Skipped     int // opted out, or pending ownership: never probed
	Recorded    int // checks recorded
	Conflicts   int // updates refused because someone else changed the domain first
	Transitions int // state changes
	// ListChanged reports a change of the listed domains or their
	// policies: the list must be generated again.
	ListChanged bool
	Batches     int // store transactions that recorded checks
}

// item is one claimed domain on its way through a round.
type item struct {
	d        store.Domain
	res      *validate.Result
	err      error
	at       time.Time
	skip     bool // opted out or pending: released untouched
	optedOut bool // on the never-probe list
	remove   bool // removal_requested: becomes removed without a probe
}

// RunRound checks every domain due now and returns when none is left. It
// is a pipeline: claims of Batch domains feed Concurrency checkers, and
// finished checks are recorded Batch at a time, so that one slow domain
// holds up nothing but its own record.
func (s *Scheduler) RunRound(ctx context.Context) (RoundStats, error) {
	var st RoundStats
	round := s.cfg.NewRound()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	work := make(chan *item, s.cfg.Batch)
	done := make(chan *item, s.cfg.Batch)
	var (
		claimErr error
		claimed  int
	)
	claiming := make(chan struct{})
	go func() {
		defer close(claiming)
		defer close(work)
		for {
			s.writes.Lock()
			// The current time: each claim's lease starts now, however
			// long the round has run.
			doms, err := s.cfg.Store.ClaimDue(ctx, s.cfg.Worker, s.cfg.Now(), s.cfg.Batch, s.cfg.Lease)
			s.writes.Unlock()
			if err != nil {
				claimErr = fmt.Errorf("admission: claiming due domains: %w", err)
				return
			}
			if len(doms) == 0 {
				return
			}
			claimed += len(doms)
			s.cfg.Metrics.queueAdd(len(doms))
			items := s.screen(ctx, doms)
			for _, it := range items {
				select {
				case work <- it:
				case <-ctx.Done():
					// Claims not handed out expire with their lease.
					s.cfg.Metrics.queueAdd(-1)
					continue
				}
			}
		}
	}()
	var wg sync.WaitGroup
	for range s.cfg.Concurrency {
		wg.Go(func() {
			for it := range work {
				s.probe(ctx, round, it)
				s.cfg.Metrics.queueAdd(-1)
				done <- it
			}
		})
	}
	go func() { wg.Wait(); close(done) }()

	var err error
	pending := make([]*item, 0, s.cfg.Batch)
	for it := range done {
		if err != nil {
			continue // draining after a failure
		}
		pending = append(pending, it)
		if len(pending) >= s.cfg.Batch {
			if err = s.record(ctx, pending, &st); err != nil {
				cancel()
			}
			pending = pending[:0]
		}
	}
	if err == nil && len(pending) > 0 {
		err = s.record(ctx, pending, &st)
	}
	<-claiming
	st.Claimed = claimed
	if err == nil {
		err = claimErr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return st, err
	}
	s.countStates(ctx, st)
	s.cfg.Metrics.roundDone()
	return st, nil
}

// statesEvery is how often the domains-by-state gauges are counted again
// when no round changed a state: counting reads every domain, and rounds
// come as often as checks fall due.
const statesEvery = time.Minute

// countStates sets the domains-by-state gauges after a round that changed
// a state, and otherwise at most every statesEvery.
func (s *Scheduler) countStates(ctx context.Context, st RoundStats) {
	if s.cfg.Metrics == nil {
		return
	}
	now := s.cfg.Now()
	s.statesMu.Lock()
	defer s.statesMu.Unlock()
	if st.Transitions == 0 && !s.counted.IsZero() && now.Sub(s.counted) < statesEvery && !now.Before(s.counted) {
		return
	}
	if counts, err := s.cfg.Store.CountByState(ctx); err == nil {
		s.cfg.Metrics.setStates(counts)
		s.counted = now
	}
}

// record writes a batch of finished checks in one transaction, carries out
// removals, and releases the domains that were not probed.
func (s *Scheduler) record(ctx context.Context, items []*item, st *RoundStats) error {
	s.writes.Lock()
	defer s.writes.Unlock()
	var (
		updates  []store.CheckUpdate
		outcomes []Outcome
		owners   []*item
		release  = map[bool][]string{} // by "listed": released to the listed or the usual interval
	)
	for _, it := range items {
		switch {
		case it.remove:
			err := s.cfg.Store.Transition(ctx, it.d.Name, RemovalRequested, Removed, Decision{Code: CodeRemoved, Reason: "removal requested; not in the next list"}.String(), it.at)
			switch {
			case err == nil:
				st.Transitions++
				st.ListChanged = true
			case errors.Is(err, store.ErrConflict):
				st.Conflicts++
			default:
				return fmt.Errorf("admission: removing %s: %w", it.d.Name, err)
			}
			release[Listed(it.d.State)] = append(release[Listed(it.d.State)], it.d.Name)
		case it.skip:
			st.Skipped++
			release[Listed(it.d.State)] = append(release[Listed(it.d.State)], it.d.Name)
		case it.err != nil:
			st.Errors++
			s.log.WarnContext(ctx, "check failed to run", "domain", it.d.Name, "err", it.err)
			release[Listed(it.d.State)] = append(release[Listed(it.d.State)], it.d.Name)
		default:
			st.Checked++
			u, out := s.update(it)
			if Pass(out.patternsOr(it.d.MXPatterns), checkOf(it.res, it.at)) {
				st.Passed++
			} else {
				st.Failed++
			}
			updates = append(updates, u)
			outcomes = append(outcomes, out)
			owners = append(owners, it)
		}
	}
	if len(updates) > 0 {
		errs, err := s.cfg.Store.RecordChecks(ctx, updates)
		if err != nil {
			return fmt.Errorf("admission: recording checks: %w", err)
		}
		st.Batches++
		for i, err := range errs {
			it, out := owners[i], outcomes[i]
			switch {
			case err == nil:
			case errors.Is(err, store.ErrConflict):
				// Claimed by another worker after our lease expired, or
				// the state changed (an operator): nothing was written.
				st.Conflicts++
				continue
			default:
				return fmt.Errorf("admission: recording the check of %s: %w", it.d.Name, err)
			}
			st.Recorded++
			if out.State != it.d.State {
				st.Transitions++
				s.log.InfoContext(ctx, "decision", "domain", it.d.Name, "from", it.d.State, "to", out.State, "reason", reasonOf(out.Decisions))
				if Listed(out.State) || Listed(it.d.State) {
					st.ListChanged = true
				}
			} else if out.Patterns != nil && Listed(out.State) {
				st.ListChanged = true
			}
			for _, n := range out.Notices {
				if err := s.cfg.Notifier.Notify(ctx, it.d.Contact, n); err != nil {
					s.log.WarnContext(ctx, "notice not sent", "domain", it.d.Name, "err", err)
				}
			}
		}
	}
	for listed, names := range release {
		// Skipped and errored domains come back after their usual interval.
		st := Validating
		if listed {
			st = Testing
		}
		if err := s.cfg.Store.Release(ctx, s.cfg.Worker, names, s.nextCheck(st, s.cfg.Now())); err != nil {
			return fmt.Errorf("admission: releasing claims: %w", err)
		}
	}
	return nil
}

// screenConcurrency bounds the opt-out reads of one claimed batch.
const screenConcurrency = 16

// screen looks up whether each claimed domain opted out, several at once,
// so that the reads overlap each other and the checks of the previous
// batch instead of delaying each check.
func (s *Scheduler) screen(ctx context.Context, doms []store.Domain) []*item {
	items := make([]*item, len(doms))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(screenConcurrency, len(doms)) {
		wg.Go(func() {
			for i := range next {
				it := &item{d: doms[i]}
				items[i] = it
				if !Probed(it.d.State) {
					continue
				}
				if s.optOut[it.d.Name] {
					it.optedOut = true
					continue
				}
				it.optedOut, it.err = s.cfg.Store.IsOptedOut(ctx, it.d.Name)
			}
		})
	}
	for i := range doms {
		next <- i
	}
	close(next)
	wg.Wait()
	return items
}

// probe checks one claimed domain (unless it must not be probed).
func (s *Scheduler) probe(ctx context.Context, round Checker, it *item) {
	switch {
	case it.d.State == RemovalRequested:
		it.remove, it.at = true, s.cfg.Now()
		return
	case !Probed(it.d.State):
		it.skip = true
		return
	}
	if it.optedOut || it.err != nil {
		if it.optedOut {
			it.skip = true
			s.cfg.Metrics.check(OutcomeOptedOut, 0)
		}
		return
	}
	start := time.Now()
	it.res, it.err = round.Check(ctx, it.d.Name)
	it.at = s.cfg.Now()
	secs := time.Since(start).Seconds()
	switch {
	case it.err != nil:
		s.cfg.Metrics.check(OutcomeError, secs)
	case Pass(it.d.MXPatterns, checkOf(it.res, it.at)):
		s.cfg.Metrics.check(OutcomePass, secs)
	default:
		s.cfg.Metrics.check(OutcomeFail, secs)
	}
}

func (o Outcome) patternsOr(p []string) []string {
	if o.Patterns != nil {
		return o.Patterns
	}
	return p
}

// update folds a check result into its domain.
func (s *Scheduler) update(it *item) (store.CheckUpdate, Outcome) {
	d := it.d
	c := checkOf(it.res, it.at)
	out := s.cfg.Rules.Evaluate(ruleDomain(d), c)
	findings, _ := json.Marshal(it.res.Findings)
	if it.res.Findings == nil {
		findings = []byte("[]")
	}
	u := store.CheckUpdate{
		Check: store.CheckRecord{
			Domain:   d.Name,
			At:       it.at,
			Eligible: it.res.Eligible,
			MXHosts:  c.MXHosts,
			Findings: findings,
			Worker:   s.cfg.Worker,
		},
		NextCheck:    s.nextCheck(out.State, it.at),
		ChecksPassed: out.ChecksPassed,
		PassingSince: timePtr(out.PassingSince),
		FailingSince: timePtr(out.FailingSince),
		MXPatterns:   out.Patterns,
	}
	if len(out.Decisions) > 0 {
		u.Transition = &store.Transition{From: d.State, To: out.State, Reason: reasonOf(out.Decisions)}
	}
	return u, out
}

// nextCheck is when a domain in state st is next due.
func (s *Scheduler) nextCheck(st State, now time.Time) time.Time {
	iv := s.cfg.CheckInterval
	if Listed(st) {
		iv = s.cfg.ListedInterval
	}
	if s.cfg.Jitter > 0 {
		j := time.Duration((rand.Float64()*2 - 1) * s.cfg.Jitter * float64(iv))
		iv += j
	}
	return now.Add(iv)
}

// reasonOf joins decisions into the one reason the store keeps.
func reasonOf(ds []Decision) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, "; ")
}

// ruleDomain is what the rules see of a stored domain.
func ruleDomain(d store.Domain) Domain {
	return Domain{
		Name:         d.Name,
		State:        d.State,
		Patterns:     d.MXPatterns,
		WantEnforce:  d.WantEnforce,
		FollowMTASTS: d.FollowMTASTS,
		ChecksPassed: d.ChecksPassed,
		PassingSince: deref(d.PassingSince),
		FailingSince: deref(d.FailingSince),
		LastChecked:  deref(d.LastChecked),
	}
}

// checkOf is what the rules see of a check result.
func checkOf(r *validate.Result, at time.Time) Check {
	c := Check{At: at, Eligible: r.Eligible, MXHosts: make([]string, 0, len(r.MXs))}
	for _, mx := range r.MXs {
		c.MXHosts = append(c.MXHosts, normalizeHost(mx.Host))
	}
	if r.MTASTS != nil {
		c.MTASTS = &MTASTS{Mode: r.MTASTS.Mode, MX: r.MTASTS.MX}
	}
	for _, f := range r.Findings {
		if f.Severity == validate.SeverityError {
			c.Codes = append(c.Codes, f.Code)
			c.Summaries = append(c.Summaries, f.Summary)
		}
	}
	return c
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
