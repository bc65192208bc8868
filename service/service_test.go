package service

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// checker passes every domain and counts the checks, by domain.
type checker struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *checker) Check(ctx context.Context, domain string) (*validate.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[domain]++
	return &validate.Result{Domain: domain, Eligible: true, Findings: []validate.Finding{},
		MXs: []validate.MXResult{{Host: "mx." + domain, Addresses: []validate.AddressResult{{IP: "127.0.0.2", OK: true}}}}}, nil
}

func (c *checker) count(domain string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[domain]
}

// newScheduler checks validating domains every interval (and listed ones
// every hour), without jitter.
func newScheduler(t testing.TB, st store.Store, fc *checker, clock *testclock.Clock, interval time.Duration) *admission.Scheduler {
	t.Helper()
	s, err := admission.NewScheduler(admission.Config{
		Store: st, NewRound: func() admission.Checker { return fc }, Now: clock.Now,
		CheckInterval: interval, ListedInterval: time.Hour, Jitter: -1, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func addDomain(t testing.TB, st store.Store, name string, state store.State, next time.Time) {
	t.Helper()
	if err := st.AddDomain(context.Background(), store.Domain{Name: name, State: state, MXPatterns: []string{"mx." + name},
		NextCheck: next, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
}

// fakeSleep moves the clock instead of waiting, records the waits, and
// ends the loop (cancel) once the clock reaches end.
type fakeSleep struct {
	clock  *testclock.Clock
	end    time.Time
	cancel context.CancelFunc

	waits []time.Duration
}

func (f *fakeSleep) sleep(ctx context.Context, d time.Duration) error {
	f.waits = append(f.waits, d)
	f.clock.Add(d)
	if !f.clock.Now().Before(f.end) {
		f.cancel()
	}
	return ctx.Err()
}

// TestLoopFollowsCheckInterval: with a check interval of one second (and
// a listed interval of an hour), the loop wakes when the next check falls
// due and checks the domain every second of (fake) time, not once a
// minute; a domain due in an hour is not checked before then, and no wait
// is shorter than MinWait or longer than the interval.
func TestLoopFollowsCheckInterval(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		minWait  time.Duration
	}{
		{time.Second, 100 * time.Millisecond},
		{5 * time.Second, time.Second},
		{2 * time.Minute, time.Second},
	} {
		t.Run(tc.interval.String(), func(t *testing.T) {
			st := memstore.New()
			clock := testclock.New(t0)
			fc := &checker{}
			addDomain(t, st, "fast.test", store.StateValidating, t0)
			addDomain(t, st, "later.test", store.StateValidating, t0.Add(time.Hour))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			span := 10 * time.Minute
			fs := &fakeSleep{clock: clock, end: t0.Add(span), cancel: cancel}
			svc, err := New(Config{
				Store: st, Scheduler: newScheduler(t, st, fc, clock, tc.interval),
				Now: clock.Now, Sleep: fs.sleep, MinWait: tc.minWait, Log: quiet,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := svc.Run(ctx); err != nil {
				t.Fatal(err)
			}
			// Checks at t0, t0+interval, … up to the end of the span.
			if got, want := fc.count("fast.test"), int(span/tc.interval); got != want && got != want+1 {
				t.Errorf("fast.test checked %d times in %v, want %d", got, span, want)
			}
			if got := fc.count("later.test"); got != 0 {
				t.Errorf("later.test checked %d times before it was due", got)
			}
			for _, w := range fs.waits {
				if w < tc.minWait || w > time.Minute || w > max(tc.interval, tc.minWait) {
					t.Errorf("waited %v, want within [%v, min(%v, 1m)]", w, tc.minWait, tc.interval)
				}
			}
		})
	}
}

// TestNextWait is bounded by MinWait and MaxWait and follows the next due
// check and the next job in between.
func TestNextWait(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(t0)
	svc, err := New(Config{
		Store: st, Scheduler: newScheduler(t, st, &checker{}, clock, time.Hour),
		Now: clock.Now, MinWait: time.Second, MaxWait: time.Minute, Log: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.NextWait(ctx); got != time.Minute {
		t.Errorf("empty store: %v, want the MaxWait", got)
	}
	addDomain(t, st, "a.test", store.StateTesting, t0.Add(time.Hour))
	if got := svc.NextWait(ctx); got != time.Minute {
		t.Errorf("due in an hour: %v, want the MaxWait", got)
	}
	addDomain(t, st, "b.test", store.StateTesting, t0.Add(10*time.Second))
	if got := svc.NextWait(ctx); got != 10*time.Second {
		t.Errorf("due in 10s: %v, want 10s", got)
	}
	addDomain(t, st, "c.test", store.StateTesting, t0.Add(-time.Hour))
	if got := svc.NextWait(ctx); got != time.Second {
		t.Errorf("due an hour ago: %v, want the MinWait", got)
	}
	// A domain claimed by another worker is due when its lease ends.
	if _, err := st.ClaimDue(ctx, "other", t0, 10, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := svc.NextWait(ctx); got != 5*time.Second {
		t.Errorf("due one under a 5s lease: %v, want 5s", got)
	}

	ran := 0
	svc, err = New(Config{
		Store: st, Now: clock.Now, MinWait: time.Second, MaxWait: time.Minute, Log: quiet,
		Jobs: []Job{{Name: "j", Every: 20 * time.Second, Run: func(context.Context) error { ran++; return nil }}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Tick(ctx); err != nil || ran != 1 {
		t.Fatalf("first tick: %v, job ran %d times, want once", err, ran)
	}
	clock.Add(5 * time.Second)
	if got := svc.NextWait(ctx); got != 15*time.Second {
		t.Errorf("job due in 15s, no scheduler: %v, want 15s", got)
	}
}

// TestJobs run at the first tick and then every period; a failing job is
// reported by the tick and runs again, and the others still run.
func TestJobs(t *testing.T) {
	ctx := context.Background()
	clock := testclock.New(t0)
	var runs []string
	boom := errors.New("boom")
	svc, err := New(Config{
		Store: memstore.New(), Now: clock.Now, Log: quiet,
		Jobs: []Job{
			{Name: "fails", Every: 10 * time.Second, Run: func(context.Context) error { runs = append(runs, "fails"); return boom }},
			{Name: "ok", Every: 30 * time.Second, Run: func(context.Context) error { runs = append(runs, "ok"); return nil }},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	var errs int
	for range 7 { // t0, +10s, …, +60s
		if err := svc.Tick(ctx); errors.Is(err, boom) {
			errs++
		}
		clock.Add(10 * time.Second)
	}
	if got := strings.Join(runs, " "); got != "fails ok fails fails fails ok fails fails fails ok" {
		t.Errorf("runs: %s", got)
	}
	if errs != 7 {
		t.Errorf("%d ticks reported the failing job, want 7", errs)
	}
	for _, j := range []Job{{Name: "no func", Every: time.Second}, {Name: "no period", Run: func(context.Context) error { return nil }}} {
		if _, err := New(Config{Store: memstore.New(), Jobs: []Job{j}}); !errors.Is(err, ErrConfig) {
			t.Errorf("job %q: %v, want ErrConfig", j.Name, err)
		}
	}
	if _, err := New(Config{}); !errors.Is(err, ErrConfig) {
		t.Errorf("no store: %v, want ErrConfig", err)
	}
}

func text(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })
}

// TestRoutes: the doors' routes sit beside the service's own, each request
// reaching the most specific pattern; conflicting routes are an error.
func TestRoutes(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	arch, err := publish.OpenArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key, err := listgen.GenerateKey(listgen.AlgEd25519)
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := listgen.MarshalPublicKeys(nil)
	clock := testclock.New(t0)
	b := &admission.ListBuilder{Store: st, Archive: arch, Signer: key, Now: clock.Now, Log: quiet}
	door := []Route{
		{"GET /{$}", text("home")},
		{"GET /check", text("check page")},
		{"/domains/", text("domain page")},
		{"GET /api/v1/check", text("check api")},
		{"POST /api/v1/submissions", text("submit api")},
		{"POST /api/v1/domains/{domain}/verify", text("verify api")},
	}
	svc, err := New(Config{Store: st, Builder: b, Archive: arch, Keys: Keys{Signer: key, PubPEM: pem}, Rules: admission.DefaultRules(),
		Routes: door, Now: clock.Now, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if serial, err := svc.PublishStart(ctx); err != nil || serial == 0 {
		t.Fatalf("PublishStart: %d %v", serial, err)
	}
	srv := httptest.NewServer(svc.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		code         int
		body         string // a part of the body
	}{
		{"GET", "/", 200, "home"},
		{"GET", "/check?domain=a.test", 200, "check page"},
		{"GET", "/domains/a.test", 200, "domain page"},
		{"GET", "/api/v1/check?domain=a.test", 200, "check api"},
		{"POST", "/api/v1/submissions", 200, "submit api"},
		{"POST", "/api/v1/domains/a.test/verify", 200, "verify api"},
		{"GET", "/api/v1/domains", 200, "[]"},
		{"GET", "/api/v1/domains/absent.test", 404, "{"},
		{"GET", "/api/v1/nothing", 404, "{"},
		{"GET", "/policy-list.json", 200, `"serial"`},
		{"GET", "/metrics", 404, ""},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s %s: %d %.80q, want %d with %q", tc.method, tc.path, resp.StatusCode, body, tc.code, tc.body)
		}
	}

	for name, routes := range map[string][]Route{
		"the same pattern twice":  {{"/api/v1/", text("mine")}},
		"overlapping patterns":    {{"GET /x/{a}/b", text("1")}, {"GET /x/a/{b}", text("2")}},
		"a malformed pattern":     {{"GET  /{", text("1")}},
		"a route without handler": {{"/nothing", nil}},
	} {
		_, err := New(Config{Store: st, Archive: arch, Keys: Keys{Signer: key, PubPEM: pem}, Routes: routes, Log: quiet})
		if !errors.Is(err, ErrRoute) {
			t.Errorf("%s: %v, want ErrRoute", name, err)
		}
	}
}

// blockingChecker's checks wait for release.
type blockingChecker struct {
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (c *blockingChecker) Check(ctx context.Context, domain string) (*validate.Result, error) {
	c.once.Do(func() { close(c.started) })
	select {
	case <-c.release:
	case <-time.After(10 * time.Second): // a guard against a deadlock, not a timing
		return nil, errors.New("the job never ran beside the round")
	}
	return (&checker{}).Check(ctx, domain)
}

// TestJobsRunBesideTheRound: a job due at a tick runs while the round's
// checks are under way, not after them: here the check waits for the job.
func TestJobsRunBesideTheRound(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(t0)
	addDomain(t, st, "a.test", store.StateValidating, t0)
	bc := &blockingChecker{started: make(chan struct{}), release: make(chan struct{})}
	sched, err := admission.NewScheduler(admission.Config{Store: st, NewRound: func() admission.Checker { return bc }, Now: clock.Now, Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: st, Scheduler: sched, Now: clock.Now, Log: quiet,
		Jobs: []Job{{Name: "j", Every: time.Minute, Run: func(context.Context) error {
			<-bc.started
			close(bc.release)
			return nil
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	checks, err := st.Checks(ctx, "a.test", time.Time{}, 0)
	if err != nil || len(checks) != 1 || !checks[0].Eligible {
		t.Errorf("checks = %+v, %v; want one passed", checks, err)
	}
}
