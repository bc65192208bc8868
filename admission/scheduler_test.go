package admission

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

// fakeChecker answers from a function and counts checks per domain.
type fakeChecker struct {
	mu     sync.Mutex
	calls  map[string]int
	rounds int
	answer func(domain string) *validate.Result
}

func (f *fakeChecker) NewRound() Checker {
	f.mu.Lock()
	f.rounds++
	f.mu.Unlock()
	return f
}

func (f *fakeChecker) Check(ctx context.Context, domain string) (*validate.Result, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = make(map[string]int)
	}
	f.calls[domain]++
	f.mu.Unlock()
	return f.answer(domain), nil
}

func (f *fakeChecker) count(domain string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[domain]
}

func okResult(domain string, hosts ...string) *validate.Result {
	r := &validate.Result{Domain: domain, Eligible: true, MXs: []validate.MXResult{}, Findings: []validate.Finding{}}
	for _, h := range hosts {
		r.MXs = append(r.MXs, validate.MXResult{Host: h, Addresses: []validate.AddressResult{{IP: "127.0.0.2", OK: true}}})
	}
	return r
}

func failResult(domain string, hosts ...string) *validate.Result {
	r := okResult(domain, hosts...)
	r.Eligible = false
	r.Findings = []validate.Finding{{Code: "cert.expired", Severity: validate.SeverityError, Summary: "expired"}}
	return r
}

// recordingNotifier keeps the notices it was given.
type recordingNotifier struct {
	mu      sync.Mutex
	notices []string
}

func (n *recordingNotifier) Notify(ctx context.Context, contact string, no Notice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.notices = append(n.notices, contact+" "+no.Domain+" "+no.Code)
	return nil
}

func newTestScheduler(t *testing.T, st store.Store, fc *fakeChecker, clock *testclock.Clock, notifier Notifier) *Scheduler {
	t.Helper()
	s, err := NewScheduler(Config{
		Store: st, NewRound: fc.NewRound, Now: clock.Now,
		CheckInterval: 6 * time.Hour, ListedInterval: time.Hour, Jitter: -1,
		Notifier: notifier, Metrics: NewMetrics(nil), OptOut: []string{"config-optout.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addDomain(t *testing.T, st store.Store, name string, state State, at time.Time, patterns ...string) {
	t.Helper()
	if err := st.AddDomain(context.Background(), store.Domain{Name: name, State: state, Contact: "postmaster@" + name,
		MXPatterns: patterns, NextCheck: at, CreatedAt: at}); err != nil {
		t.Fatal(err)
	}
}

// TestSchedulerLifecycle drives rounds with a fake clock: a passing domain
// is admitted after the admission period, a broken listed one is demoted
// after the grace period and its contact told, opted-out and pending
// domains are never probed, and a removal is carried out without a probe.
func TestSchedulerLifecycle(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(t0)
	broken := map[string]bool{}
	var mu sync.Mutex
	fc := &fakeChecker{answer: func(d string) *validate.Result {
		mu.Lock()
		defer mu.Unlock()
		if broken[d] {
			return failResult(d, "mx."+d)
		}
		return okResult(d, "mx."+d)
	}}
	notes := &recordingNotifier{}
	s := newTestScheduler(t, st, fc, clock, notes)

	addDomain(t, st, "good.test", Validating, t0, "mx.good.test")
	addDomain(t, st, "listed.test", Enforce, t0, "mx.listed.test")
	addDomain(t, st, "optout.test", Validating, t0, "mx.optout.test")
	addDomain(t, st, "config-optout.test", Validating, t0, "mx.config-optout.test")
	addDomain(t, st, "pending.test", Pending, t0, "mx.pending.test")
	addDomain(t, st, "leaving.test", Testing, t0, "mx.leaving.test")
	if err := st.AddOptOut(ctx, "optout.test", "operator asked", t0); err != nil {
		t.Fatal(err)
	}
	if err := st.RequestRemoval(ctx, "leaving.test", CodeRequested+": by the operator", t0); err != nil {
		t.Fatal(err)
	}

	listChanges := 0
	for clock.Now().Before(t0.Add(8 * day)) {
		if clock.Now().Equal(t0.Add(2 * day)) {
			mu.Lock()
			broken["listed.test"] = true
			mu.Unlock()
		}
		stats, err := s.RunRound(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats.ListChanged {
			listChanges++
		}
		clock.Add(time.Hour)
	}

	want := map[string]State{
		"good.test":          Testing,
		"listed.test":        Demoted,
		"optout.test":        Validating,
		"config-optout.test": Validating,
		"pending.test":       Pending,
		"leaving.test":       Removed,
	}
	for name, state := range want {
		d, err := st.GetDomain(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if d.State != state {
			t.Errorf("%s: state %s, want %s", name, d.State, state)
		}
	}
	for _, name := range []string{"optout.test", "config-optout.test", "pending.test", "leaving.test"} {
		if n := fc.count(name); n != 0 {
			t.Errorf("%s was probed %d times, want never", name, n)
		}
	}
	// Validating every 6 hours for 8 days; listed every hour.
	if n := fc.count("good.test"); n < 29 || n > 8*4+1+24 {
		t.Errorf("good.test checked %d times", n)
	}
	decs, err := st.Decisions(ctx, "listed.test")
	if err != nil || len(decs) != 1 || !strings.HasPrefix(decs[0].Reason, CodeFailure) {
		t.Errorf("listed.test decisions = %+v, %v; want one %s", decs, err, CodeFailure)
	}
	decs, _ = st.Decisions(ctx, "good.test")
	if len(decs) != 1 || decs[0].To != Testing || !strings.HasPrefix(decs[0].Reason, CodeAdmitted) {
		t.Errorf("good.test decisions = %+v", decs)
	}
	wantNotes := []string{
		"postmaster@listed.test listed.test " + CodeCheckFailed,
		"postmaster@listed.test listed.test " + CodeFailure,
	}
	if strings.Join(notes.notices, "\n") != strings.Join(wantNotes, "\n") {
		t.Errorf("notices:\n%s\nwant:\n%s", strings.Join(notes.notices, "\n"), strings.Join(wantNotes, "\n"))
	}
	if listChanges != 3 { // removal, demotion, admission
		t.Errorf("list changed %d times, want 3", listChanges)
	}
	checks, _ := st.Checks(ctx, "listed.test", time.Time{}, 1)
	if len(checks) != 1 || !strings.Contains(string(checks[0].Findings), "cert.expired") {
		t.Errorf("latest check of listed.test = %+v, want its findings kept", checks)
	}
}

// TestSchedulerEachDomainOncePerRound checks that a round checks each due
// domain once, however many batches it takes, and shares one Round.
func TestSchedulerEachDomainOncePerRound(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(t0)
	fc := &fakeChecker{answer: func(d string) *validate.Result { return okResult(d, "mx.shared.test") }}
	s, err := NewScheduler(Config{Store: st, NewRound: fc.NewRound, Now: clock.Now, Batch: 7, Concurrency: 3, Jitter: -1})
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for i := range 50 {
		name := "d" + string(rune('a'+i/26)) + string(rune('a'+i%26)) + ".test"
		names = append(names, name)
		addDomain(t, st, name, Validating, t0, "mx.shared.test")
	}
	stats, err := s.RunRound(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Checked != 50 || stats.Recorded != 50 || stats.Batches != 8 {
		t.Errorf("stats = %+v, want 50 checked and recorded in 8 batches", stats)
	}
	for _, n := range names {
		if c := fc.count(n); c != 1 {
			t.Errorf("%s checked %d times", n, c)
		}
	}
	if fc.rounds != 1 {
		t.Errorf("%d rounds started, want 1", fc.rounds)
	}
	// Nothing is due again until the interval has passed.
	if stats, err := s.RunRound(ctx); err != nil || stats.Claimed != 0 {
		t.Errorf("second round claimed %d (%v), want 0", stats.Claimed, err)
	}
}

// countsStore counts CountByState calls.
type countsStore struct {
	store.Store
	mu     sync.Mutex
	counts int
}

func (c *countsStore) CountByState(ctx context.Context) (map[State]int, error) {
	c.mu.Lock()
	c.counts++
	c.mu.Unlock()
	return c.Store.CountByState(ctx)
}

// TestRoundCountsStatesSparingly: rounds come as often as checks fall due,
// so the domains-by-state gauges (which read every domain) are counted
// again only after a state changed or once a minute.
func TestRoundCountsStatesSparingly(t *testing.T) {
	ctx := context.Background()
	st := &countsStore{Store: memstore.New()}
	clock := testclock.New(t0)
	fc := &fakeChecker{answer: func(d string) *validate.Result { return okResult(d, "mx."+d) }}
	s := newTestScheduler(t, st, fc, clock, nil)
	addDomain(t, st, "listed.test", Testing, t0.Add(time.Hour), "mx.listed.test")
	round := func() {
		t.Helper()
		if _, err := s.RunRound(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		round()
		clock.Add(time.Second)
	}
	if st.counts != 1 {
		t.Errorf("10 idle rounds in 10s counted the states %d times, want 1", st.counts)
	}
	clock.Add(time.Minute)
	round()
	if st.counts != 2 {
		t.Errorf("a round a minute later: %d counts, want 2", st.counts)
	}
	// A removal is a transition: counted at once.
	if err := st.RequestRemoval(ctx, "listed.test", "asked", clock.Now()); err != nil {
		t.Fatal(err)
	}
	d, _ := st.GetDomain(ctx, "listed.test")
	d.NextCheck = clock.Now()
	if err := st.UpdateDomain(ctx, d); err != nil {
		t.Fatal(err)
	}
	round()
	if st.counts != 3 {
		t.Errorf("a round with a transition: %d counts, want 3", st.counts)
	}
}
