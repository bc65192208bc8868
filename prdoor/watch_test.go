package prdoor

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

type watchEnv struct {
	*env
	st    *memstore.Store
	clock *testclock.Clock
	lc    *lifecycle.Lifecycle
	w     *Watcher
}

func newWatchEnv(t *testing.T, base ...string) *watchEnv {
	e := newEnv(t, base...)
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	// A clock two days behind the wall clock: a rate-limit reset the
	// watcher waits for on it has passed for go-github's own check.
	clock := testclock.New(time.Now().Add(-48 * time.Hour).Truncate(time.Second))
	lc := &lifecycle.Lifecycle{Store: st, TXT: e.v, Now: clock.Now}
	w := &Watcher{Door: e.door, Lifecycle: lc, Store: st, Now: clock.Now, MinChecks: 3, MinDays: 2}
	return &watchEnv{env: e, st: st, clock: clock, lc: lc, w: w}
}

func (we *watchEnv) poll(t *testing.T) {
	t.Helper()
	if err := we.w.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (we *watchEnv) comment(t *testing.T, n int) string {
	t.Helper()
	cs := we.botComments(n)
	if len(cs) != 1 {
		t.Fatalf("%d bot comments on %d, want 1", len(cs), n)
	}
	return cs[0].Body
}

// TestWatcherAdmitsProvenPR: the watcher takes a proven, passing PR's
// domain into validating (source: the PR), and edits the one comment as
// checks pass, fail, and the domain is admitted and published.
func TestWatcherAdmitsProvenPR(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	we.domain("new.test", "good", 7)
	we.domain("unproven.test", "good", 0)
	pr := we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "new.test"))
	we.gh.OpenPR(8, "contributor/list", listFile(t, "listed.test", "unproven.test"))
	we.gh.OpenPR(9, "example/list", map[string][]byte{"README.md": []byte("typo fixed\n")})
	ctx := t.Context()

	we.poll(t)
	d, err := we.st.GetDomain(ctx, "new.test")
	if err != nil {
		t.Fatal(err)
	}
	if d.State != store.StateValidating || d.Source != we.gh.PRURL(7) || !d.WantEnforce || len(d.MXPatterns) != 1 || d.MXPatterns[0] != "mx.good.test" {
		t.Fatalf("new.test in the store: %+v", d)
	}
	if _, err := we.st.GetDomain(ctx, "unproven.test"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an unproven domain entered the store: %v", err)
	}
	if len(we.gh.Comments(9)) != 0 || len(we.gh.Statuses(we.gh.PR(9).HeadSHA)) != 0 {
		t.Errorf("a PR that does not touch the list was answered")
	}
	body := we.comment(t, 7)
	if !strings.Contains(body, "Admission progress") || !strings.Contains(body, "| `new.test` | validating | 0 of 3 |") {
		t.Fatalf("first comment:\n%s", body)
	}
	if st := we.finalStatus(t, pr.HeadSHA); st.State != "success" {
		t.Errorf("status %q", st.State)
	}
	if st := we.finalStatus(t, we.gh.PR(8).HeadSHA); st.State != "failure" {
		t.Errorf("PR 8 status %q", st.State)
	}
	statuses := len(we.gh.Statuses(pr.HeadSHA))

	// Nothing changed: the list of PRs is a 304 and nothing is written.
	we.poll(t)
	if n := countStatus(we, "/pulls", http.StatusNotModified); n != 1 {
		t.Errorf("%d conditional 304s, want 1", n)
	}
	if n := we.gh.CallCount("PATCH", `/issues/comments/`); n != 0 {
		t.Errorf("%d comment edits without a change", n)
	}

	// A passing check: the comment is edited with the progress.
	since := we.clock.Now()
	we.clock.Add(6 * time.Hour)
	at := we.clock.Now()
	if err := we.st.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "new.test", At: at, Eligible: true, MXHosts: []string{"mx.good.test"}},
		NextCheck: at.Add(6 * time.Hour), ChecksPassed: 1, PassingSince: &since}); err != nil {
		t.Fatal(err)
	}
	we.poll(t)
	body = we.comment(t, 7)
	if !strings.Contains(body, "| `new.test` | validating | 1 of 3 | "+since.Add(48*time.Hour).UTC().Format("2006-01-02")+" |") {
		t.Fatalf("after a pass:\n%s", body)
	}
	// A failing check: its findings, with their fixes.
	we.clock.Add(6 * time.Hour)
	at = we.clock.Now()
	res := validate.Result{Domain: "new.test", Findings: []validate.Finding{{Code: "cert.expired", Severity: validate.SeverityError,
		Summary: "Certificate expired", Message: "Renew the certificate and reload the server."}}}
	raw, _ := json.Marshal(res)
	if err := we.st.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "new.test", At: at, Findings: raw, MXHosts: []string{"mx.good.test"}},
		NextCheck: at.Add(6 * time.Hour), FailingSince: &at}); err != nil {
		t.Fatal(err)
	}
	we.poll(t)
	body = we.comment(t, 7)
	if !strings.Contains(body, "latest check failed") || !strings.Contains(body, "cert.expired") || !strings.Contains(body, "Renew the certificate") {
		t.Fatalf("after a failure:\n%s", body)
	}
	// Admitted and published.
	we.clock.Add(72 * time.Hour)
	if err := we.st.Transition(ctx, "new.test", store.StateValidating, store.StateTesting, "admission.admitted", we.clock.Now()); err != nil {
		t.Fatal(err)
	}
	we.poll(t)
	if body = we.comment(t, 7); !strings.Contains(body, "admitted, in the next list") {
		t.Fatalf("after admission:\n%s", body)
	}
	we.clock.Add(time.Minute)
	if err := we.st.SaveList(ctx, store.ListRecord{Serial: 5, Timestamp: we.clock.Now(), Expires: we.clock.Now().Add(7 * 24 * time.Hour), SHA256: strings.Repeat("0", 64), Entries: 1}); err != nil {
		t.Fatal(err)
	}
	we.poll(t)
	if body = we.comment(t, 7); !strings.Contains(body, "admitted, in list serial 5") {
		t.Fatalf("after publication:\n%s", body)
	}
	if n := len(we.gh.Statuses(pr.HeadSHA)); n != statuses {
		t.Errorf("statuses set again without a new head: %d, was %d", n, statuses)
	}
	we.golden(t, "watcher-admitted", body)
}

func countStatus(we *watchEnv, pathSuffix string, status int) int {
	n := 0
	for _, c := range we.gh.Calls() {
		if c.Method == "GET" && strings.HasSuffix(c.Path, pathSuffix) && c.Status == status {
			n++
		}
	}
	return n
}

// TestWatcherOneDomainThroughTwoDoors: a domain submitted by the web form
// (pending), then by a proven pull request, is one domain, validating.
func TestWatcherOneDomainThroughTwoDoors(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	ctx := t.Context()
	if _, err := we.lc.Submit(ctx, lifecycle.Request{Domain: "both.test", Contact: "postmaster@both.test", MXPatterns: []string{"mx.good.test"}, Source: "web"}); err != nil {
		t.Fatal(err)
	}
	we.domain("both.test", "good", 7)
	we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "both.test"))
	we.poll(t)
	ds, err := we.st.ListDomains(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Name != "both.test" || ds[0].State != store.StateValidating || ds[0].Contact != "postmaster@both.test" || ds[0].Source != we.gh.PRURL(7) {
		t.Fatalf("store: %+v", ds)
	}
}

// TestWatcherBacksOff: a 429 with Retry-After and a 403 with
// X-RateLimit-Reset stop polling until then; nothing is sent meanwhile.
func TestWatcherBacksOff(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		wait   time.Duration
	}{
		{"429 Retry-After", http.StatusTooManyRequests, 120 * time.Second},
		{"403 X-RateLimit-Reset", http.StatusForbidden, 30 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			we := newWatchEnv(t, "listed.test")
			we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test"))
			reset := we.clock.Now().Add(c.wait)
			we.gh.RateLimit(1, c.status, reset, int(c.wait/time.Second))
			if err := we.w.Poll(t.Context()); !errors.Is(err, ErrBackoff) {
				t.Fatalf("Poll: %v, want ErrBackoff", err)
			}
			if got := we.w.Backoff(); !got.Equal(reset) {
				t.Fatalf("back-off until %v, want %v", got, reset)
			}
			calls := len(we.gh.Calls())
			we.clock.Add(c.wait - time.Second)
			we.poll(t)
			if n := len(we.gh.Calls()); n != calls {
				t.Fatalf("%d requests during the back-off", n-calls)
			}
			we.clock.Add(2 * time.Second)
			we.poll(t)
			if len(we.gh.Calls()) == calls {
				t.Fatal("no request after the back-off")
			}
		})
	}
}

// TestWatcherRechecksFailingPR: a PR without its proof is evaluated again
// after Recheck without a push, and passes once the record is published.
func TestWatcherRechecksFailingPR(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	we.domain("late.test", "good", 0)
	pr := we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "late.test"))
	we.poll(t)
	if st := we.finalStatus(t, pr.HeadSHA); st.State != "failure" {
		t.Fatalf("status %q", st.State)
	}
	we.dns.Add(`_starttls-preload.late.test. 300 IN TXT "` + we.gh.PRURL(7) + `"`)
	we.clock.Add(DefaultRecheck - time.Minute)
	we.poll(t)
	if st := we.finalStatus(t, pr.HeadSHA); st.State != "failure" {
		t.Fatalf("evaluated again before Recheck: %q", st.State)
	}
	we.clock.Add(time.Minute)
	we.poll(t)
	if st := we.finalStatus(t, pr.HeadSHA); st.State != "success" {
		t.Fatalf("status after Recheck %q", st.State)
	}
	if d, err := we.st.GetDomain(t.Context(), "late.test"); err != nil || d.State != store.StateValidating {
		t.Fatalf("late.test: %+v %v", d, err)
	}
	if len(we.botComments(7)) != 1 {
		t.Errorf("%d comments", len(we.botComments(7)))
	}
}

// TestWatcherDoesNotSubmitAHeadTwice: a pull request's head is handed to
// the lifecycle once. A later decision about the domain (here the owner's
// removal request) is not undone by the same head seen again — after a
// label change, or after a restart of the service — while a new push is a
// new submission.
func TestWatcherDoesNotSubmitAHeadTwice(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	ctx := t.Context()
	we.domain("new.test", "good", 7)
	we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "new.test"))
	we.poll(t)
	if d, err := we.st.GetDomain(ctx, "new.test"); err != nil || d.State != store.StateValidating {
		t.Fatalf("new.test: %+v %v", d, err)
	}
	if _, err := we.lc.RemoveProven(ctx, "new.test", lifecycle.Evidence{By: lifecycle.ByOperator, Detail: "owner's request"}); err != nil {
		t.Fatal(err)
	}
	state := func(when string) store.State {
		t.Helper()
		d, err := we.st.GetDomain(ctx, "new.test")
		if err != nil {
			t.Fatal(err)
		}
		return d.State
	}

	we.gh.SetLabels(7, "documentation")
	we.poll(t)
	if s := state("label"); s != store.StateRemovalRequested {
		t.Fatalf("after a label change on the same head: %s, want removal_requested", s)
	}
	// A restart: a new watcher with nothing in memory.
	we.w = &Watcher{Door: we.newDoor(t), Lifecycle: we.lc, Store: we.st, Now: we.clock.Now, MinChecks: 3, MinDays: 2}
	we.poll(t)
	if s := state("restart"); s != store.StateRemovalRequested {
		t.Fatalf("after a restart: %s, want removal_requested", s)
	}
	if !strings.Contains(we.comment(t, 7), "| `new.test` | removal\\_requested |") {
		t.Errorf("the comment does not show the domain's state:\n%s", we.comment(t, 7))
	}
	// A new push is a new submission by the pull request, still proven.
	we.gh.PushPR(7, map[string][]byte{"README.md": []byte("# list, and new.test\n")})
	we.poll(t)
	if s := state("push"); s != store.StateValidating {
		t.Fatalf("after a new push: %s, want validating", s)
	}
}

// TestWatcherBacksOffSecondaryLimit: GitHub's secondary rate limit is a
// 403 or 429 whose message says so, the primary limit not spent: wait
// Retry-After when given, else at least a minute, longer each time it
// comes again (GitHub's REST documentation, "Exceeding the rate limit").
func TestWatcherBacksOffSecondaryLimit(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		retry  int
		waits  []time.Duration
	}{
		{"403 Retry-After", http.StatusForbidden, 90, []time.Duration{90 * time.Second, 90 * time.Second}},
		{"429 Retry-After", http.StatusTooManyRequests, 90, []time.Duration{90 * time.Second}},
		{"403 no header", http.StatusForbidden, 0, []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute}},
		{"429 no header", http.StatusTooManyRequests, 0, []time.Duration{time.Minute, 2 * time.Minute}},
	} {
		t.Run(c.name, func(t *testing.T) {
			we := newWatchEnv(t, "listed.test")
			we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test"))
			for _, wait := range c.waits {
				we.gh.SecondaryRateLimit(1, c.status, c.retry)
				start := we.clock.Now()
				if err := we.w.Poll(t.Context()); !errors.Is(err, ErrBackoff) {
					t.Fatalf("Poll: %v, want ErrBackoff", err)
				}
				if got := we.w.Backoff(); !got.Equal(start.Add(wait)) {
					t.Fatalf("back-off until %v, want %v", got.Sub(start), wait)
				}
				calls := len(we.gh.Calls())
				we.clock.Add(wait - time.Second)
				we.poll(t)
				if n := len(we.gh.Calls()); n != calls {
					t.Fatalf("%d requests during the back-off", n-calls)
				}
				we.clock.Add(time.Second)
			}
			we.poll(t)
			// A poll that went through: the next limit waits a minute again.
			if c.retry == 0 {
				we.gh.SecondaryRateLimit(1, c.status, 0)
				start := we.clock.Now()
				we.w.Poll(t.Context())
				if got := we.w.Backoff(); !got.Equal(start.Add(time.Minute)) {
					t.Fatalf("after a good poll, back-off %v, want 1m", got.Sub(start))
				}
			}
		})
	}
}

// TestWatcherClosedPRKeepsItsDomains: a pull request closed without a
// merge after its domain entered validating does not withdraw the domain
// (its owner proved control, and the comment said the pull request need
// not be merged); the comment says so once, and how to withdraw.
func TestWatcherClosedPRKeepsItsDomains(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	ctx := t.Context()
	we.domain("new.test", "good", 7)
	we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "new.test"))
	we.poll(t)
	we.gh.ClosePR(7)
	we.poll(t)
	if d, err := we.st.GetDomain(ctx, "new.test"); err != nil || d.State != store.StateValidating {
		t.Fatalf("new.test after the close: %+v %v", d, err)
	}
	body := we.comment(t, 7)
	if !strings.Contains(body, "This pull request is closed") || !strings.Contains(body, "removal") {
		t.Fatalf("comment after the close:\n%s", body)
	}
	edits := we.gh.CallCount("PATCH", `/issues/comments/`)
	we.poll(t)
	if n := we.gh.CallCount("PATCH", `/issues/comments/`); n != edits {
		t.Errorf("%d more edits of a closed pull request's comment", n-edits)
	}
}

// TestWatcherPagesOnNotModified: a 304 carries no Link header (RFC 9110
// §15.4.5 lists what it repeats), so the watcher remembers each page's
// next page: an open pull request on the second page is still seen, not
// taken for closed.
func TestWatcherPagesOnNotModified(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	we.domain("new.test", "good", 1)
	we.gh.OpenPR(1, "contributor/list", listFile(t, "listed.test", "new.test"))
	for n := 2; n <= 101; n++ {
		we.gh.OpenPR(n, "contributor/list", map[string][]byte{"README.md": []byte("typo " + itoa(n) + "\n")})
	}
	we.poll(t)
	we.poll(t)
	if n := countStatus(we, "/pulls", http.StatusNotModified); n < 1 {
		t.Fatalf("%d 304s", n)
	}
	if body := we.comment(t, 1); strings.Contains(body, "is closed") {
		t.Fatalf("an open pull request on page 2 was taken for closed:\n%s", body)
	}
	we.w.mu.Lock()
	_, ok := we.w.prs[1]
	we.w.mu.Unlock()
	if !ok {
		t.Fatal("the watcher forgot pull request 1")
	}
}

// flakyAdmitter fails its first AdmitProven as a store that is down does.
type flakyAdmitter struct {
	Admitter
	failed bool
}

func (f *flakyAdmitter) AdmitProven(ctx context.Context, r lifecycle.Request, ev lifecycle.Evidence) (lifecycle.Change, error) {
	if !f.failed {
		f.failed = true
		return lifecycle.Change{}, errors.New("store: connection refused")
	}
	return f.Admitter.AdmitProven(ctx, r, ev)
}

// TestWatcherRetriesAFailedSubmission: a submission the store could not
// take is tried again at the next poll, not lost until the next push.
func TestWatcherRetriesAFailedSubmission(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	we.w.Lifecycle = &flakyAdmitter{Admitter: we.lc}
	we.domain("new.test", "good", 7)
	we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "new.test"))
	if err := we.w.Poll(t.Context()); err == nil {
		t.Error("a failed submission is not reported")
	}
	we.poll(t)
	if d, err := we.st.GetDomain(t.Context(), "new.test"); err != nil || d.State != store.StateValidating {
		t.Fatalf("new.test after the retry: %+v %v", d, err)
	}
}

// countingChecker counts the domains checked.
type countingChecker struct {
	prcheck.Checker
	n *atomic.Int64
}

func (c countingChecker) Check(ctx context.Context, d string) (*validate.Result, error) {
	c.n.Add(1)
	return c.Checker.Check(ctx, d)
}

// TestWatcherRecheckLooksAtProofsFirst: the hourly look at a pull request
// that did not pass asks the DNS for its proofs, and runs the full checks
// (which dial strangers' MX hosts) again only when a proof changed, so
// that open pull requests naming other people's domains do not make the
// service dial them every hour.
func TestWatcherRecheckLooksAtProofsFirst(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	var n atomic.Int64
	v := we.v
	we.door.Checker = func() prcheck.Checker { return countingChecker{v.NewRound(), &n} }
	we.domain("late.test", "good", 0)
	pr := we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "late.test"))
	we.poll(t)
	if n.Load() != 1 {
		t.Fatalf("%d checks", n.Load())
	}
	we.clock.Add(DefaultRecheck)
	we.poll(t)
	if n.Load() != 1 {
		t.Errorf("checked again without a new proof: %d checks", n.Load())
	}
	we.dns.Add(`_starttls-preload.late.test. 300 IN TXT "` + we.gh.PRURL(7) + `"`)
	we.clock.Add(DefaultRecheck)
	we.poll(t)
	if n.Load() != 2 {
		t.Errorf("%d checks after the proof appeared, want 2", n.Load())
	}
	if st := we.finalStatus(t, pr.HeadSHA); st.State != "success" {
		t.Errorf("status %q", st.State)
	}
}

// TestCheckPRKeepsTheSubmittedRecord: a pr-check run (the workflow) on a
// head the watcher submitted keeps the comment's record of it, so a
// restart of the watcher does not submit that head again.
func TestCheckPRKeepsTheSubmittedRecord(t *testing.T) {
	we := newWatchEnv(t, "listed.test")
	ctx := t.Context()
	we.domain("new.test", "good", 7)
	pr := we.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "new.test"))
	we.poll(t)
	if _, err := we.door.CheckPR(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(we.comment(t, 7), SubmittedMarker(pr.HeadSHA)) {
		t.Fatalf("the record of the submitted head is gone:\n%s", we.comment(t, 7))
	}
}
