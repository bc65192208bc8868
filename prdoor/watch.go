package prdoor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

// Admitter is the lifecycle as the watcher uses it.
type Admitter interface {
	AdmitProven(ctx context.Context, r lifecycle.Request, ev lifecycle.Evidence) (lifecycle.Change, error)
	RemoveProven(ctx context.Context, domain string, ev lifecycle.Evidence) (lifecycle.Change, error)
}

var _ Admitter = (*lifecycle.Lifecycle)(nil)

// ProgressStore is what the watcher reads to show admission progress.
type ProgressStore interface {
	GetDomain(ctx context.Context, name string) (store.Domain, error)
	Checks(ctx context.Context, domain string, since time.Time, limit int) ([]store.CheckRecord, error)
	Decisions(ctx context.Context, domain string) ([]store.Decision, error)
	LatestList(ctx context.Context) (store.ListRecord, error)
}

var _ ProgressStore = store.Store(nil)

// DefaultRecheck is Watcher.Recheck's default.
const DefaultRecheck = time.Hour

// MaxWatched bounds the open pull requests one poll looks at.
const MaxWatched = 500

// Watcher polls a repository's open pull requests: each new head is
// answered as pr-check answers it, each proven and passing added or changed
// domain is submitted through the lifecycle (validating, source the pull
// request's URL), each proven removal requested; and the comment shows the
// submitted domains' progress from the store, edited when it changes. The
// list of open pull requests is read with conditional requests (an
// unchanged list costs a 304, which GitHub does not count against the rate
// limit); a rate-limit answer (403 or 429) stops polling until the reset
// time it gives.
type Watcher struct {
	Door      *Door
	Lifecycle Admitter
	Store     ProgressStore
	Now       func() time.Time
	// MinChecks and MinDays are the admission rules, for the progress
	// shown (passes of MinChecks; earliest admission PassingSince+MinDays).
	MinChecks int
	MinDays   int
	// Recheck is how often a pull request that did not pass has its
	// proofs looked up again without a new push, and is evaluated again
	// (checks included) when one changed, so that a TXT record published
	// meanwhile is seen without dialling strangers' MX hosts every time
	// (DefaultRecheck; negative: never).
	Recheck time.Duration

	mu      sync.Mutex
	etags   map[string]string
	pages   map[string]cachedPage
	backoff time.Time
	strikes int // rate limits met since a poll last went through
	prs     map[int]*watched
}

// watched is what the watcher remembers of one open pull request.
type watched struct {
	key       string // head SHA and labels: a new key is evaluated again
	evaluated time.Time
	outcome   *Outcome
	submitted []string // domains handed to the lifecycle
	// submittedHead is the head commit whose domains were handed to the
	// lifecycle (once per head).
	submittedHead string
	body          string // the comment as last written
}

// ErrBackoff is returned by Poll while a rate limit holds.
var ErrBackoff = errors.New("prdoor: rate limited; waiting for the reset")

func (w *Watcher) now() time.Time {
	if w.Now == nil {
		return time.Now()
	}
	return w.Now()
}

// Backoff returns the time before which Poll sends nothing (zero: none).
func (w *Watcher) Backoff() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.backoff
}

// Poll looks at the open pull requests once (the service runs it as a
// periodic job).
func (w *Watcher) Poll(ctx context.Context) error {
	w.mu.Lock()
	if w.etags == nil {
		w.etags, w.pages, w.prs = map[string]string{}, map[string]cachedPage{}, map[int]*watched{}
	}
	if w.now().Before(w.backoff) {
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	prs, err := w.openPRs(ctx)
	if err != nil {
		return w.limited(err)
	}
	w.mu.Lock()
	w.strikes = 0
	w.mu.Unlock()
	open := map[int]bool{}
	var errs []error
	for _, pr := range prs {
		n := pr.GetNumber()
		open[n] = true
		if err := w.one(ctx, pr); err != nil {
			if lerr := w.limited(err); errors.Is(lerr, ErrBackoff) {
				return lerr
			}
			errs = append(errs, err)
		}
	}
	var closed []*watched
	w.mu.Lock()
	for n, st := range w.prs {
		if !open[n] {
			delete(w.prs, n)
			if st.outcome != nil && st.outcome.SubmittedHead != "" {
				closed = append(closed, st)
			}
		}
	}
	w.mu.Unlock()
	for _, st := range closed {
		if err := w.closedComment(ctx, st); err != nil {
			if lerr := w.limited(err); errors.Is(lerr, ErrBackoff) {
				return lerr
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// limited turns a rate-limit answer into a back-off until its reset time
// and returns ErrBackoff; other errors are returned as they are.
func (w *Watcher) limited(err error) error {
	w.mu.Lock()
	strikes := w.strikes
	w.mu.Unlock()
	until, ok := resetTime(err, w.now(), strikes)
	if !ok {
		return err
	}
	w.mu.Lock()
	w.backoff = until
	w.strikes++
	w.mu.Unlock()
	w.Door.log().Warn("GitHub rate limit; polling paused", "until", until, "err", err)
	return fmt.Errorf("%w (%s): %v", ErrBackoff, until.UTC().Format(time.RFC3339), err)
}

// resetTime reads when a rate limit ends, as GitHub's REST documentation
// ("Exceeding the rate limit") says: a 403 or 429 is a rate limit when
// X-RateLimit-Remaining is 0 (primary), or it carries Retry-After or a
// message saying so (secondary). Wait Retry-After seconds when given; else
// until X-RateLimit-Reset when the primary limit is spent; else at least a
// minute, doubled for each limit met again before a poll went through
// (strikes).
func resetTime(err error, now time.Time, strikes int) (time.Time, bool) {
	var (
		rl       *github.RateLimitError
		ab       *github.AbuseRateLimitError
		er       *github.ErrorResponse
		hdr      http.Header
		fallback time.Time
	)
	switch {
	case errors.As(err, &rl):
		if rl.Response != nil {
			hdr = rl.Response.Header
		}
		if !rl.Rate.Reset.IsZero() {
			fallback = rl.Rate.Reset.Time
		}
	case errors.As(err, &ab):
		if ab.Response != nil {
			hdr = ab.Response.Header
		}
		if ab.RetryAfter != nil {
			fallback = now.Add(*ab.RetryAfter)
		}
	case errors.As(err, &er) && er.Response != nil && rateLimited(er):
		hdr = er.Response.Header
	default:
		return time.Time{}, false
	}
	// Bounded: a server cannot stop the watcher for more than a day.
	const maxWait = 24 * time.Hour
	capped := func(t time.Time) time.Time {
		if t.After(now.Add(maxWait)) {
			return now.Add(maxWait)
		}
		return t
	}
	if s, err := strconv.Atoi(strings.TrimSpace(hdr.Get("Retry-After"))); err == nil && s >= 0 {
		return now.Add(min(time.Duration(s)*time.Second, maxWait)), true
	}
	if strings.TrimSpace(hdr.Get("X-RateLimit-Remaining")) == "0" {
		if s, err := strconv.ParseInt(strings.TrimSpace(hdr.Get("X-RateLimit-Reset")), 10, 64); err == nil {
			return capped(time.Unix(s, 0)), true
		}
	}
	if !fallback.IsZero() {
		return capped(fallback), true
	}
	return now.Add(time.Minute << min(strikes, 6)), true
}

// rateLimited reports whether a 403 or 429 that go-github did not type is
// a rate limit: 429 always; 403 when the primary limit is spent, or with
// Retry-After, or a message naming a rate limit (a 403 is otherwise a
// permission error, not to be waited out).
func rateLimited(er *github.ErrorResponse) bool {
	h := er.Response.Header
	switch er.Response.StatusCode {
	case http.StatusTooManyRequests:
		return true
	case http.StatusForbidden:
		return h.Get("X-RateLimit-Remaining") == "0" || h.Get("Retry-After") != "" ||
			strings.Contains(strings.ToLower(er.Message), "rate limit")
	}
	return false
}

// openPRs lists the open pull requests, page by page, each page with
// If-None-Match: an unchanged page is a 304 and comes from the cache.
func (w *Watcher) openPRs(ctx context.Context) ([]*github.PullRequest, error) {
	d := w.Door
	var all []*github.PullRequest
	for page := 1; page <= MaxWatched/100; page++ {
		u := fmt.Sprintf("repos/%s/%s/pulls?state=open&sort=created&direction=asc&per_page=100&page=%d", d.Owner, d.Repo, page)
		req, err := d.GH.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		w.mu.Lock()
		etag := w.etags[u]
		w.mu.Unlock()
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		var prs []*github.PullRequest
		more := false
		resp, err := d.GH.Do(ctx, req, &prs)
		switch {
		case err == nil:
			more = resp.NextPage != 0
			w.mu.Lock()
			// An ETag is a short opaque string; a longer one is not kept.
			if e := resp.Header.Get("ETag"); e != "" && len(e) <= 256 {
				w.etags[u] = e
				w.pages[u] = cachedPage{prs: prs, more: more}
			} else {
				delete(w.etags, u)
				delete(w.pages, u)
			}
			w.mu.Unlock()
		case isStatus(err, http.StatusNotModified):
			// RFC 9110 §15.4.5: a 304 need not repeat the Link header,
			// so whether a next page exists comes from the cache too.
			w.mu.Lock()
			c := w.pages[u]
			w.mu.Unlock()
			prs, more = c.prs, c.more
		default:
			return nil, fmt.Errorf("prdoor: listing open pull requests: %w", err)
		}
		all = append(all, prs...)
		if !more {
			break
		}
	}
	return all, nil
}

// cachedPage is one page of open pull requests as last read, for a 304.
type cachedPage struct {
	prs  []*github.PullRequest
	more bool // a next page followed
}

// one handles one open pull request.
func (w *Watcher) one(ctx context.Context, pr *github.PullRequest) error {
	n := pr.GetNumber()
	labels := make([]string, 0, len(pr.Labels))
	for _, l := range pr.Labels {
		labels = append(labels, l.GetName())
	}
	slices.Sort(labels)
	key := pr.GetHead().GetSHA() + " " + strings.Join(labels, ",")
	w.mu.Lock()
	st := w.prs[n]
	if st == nil {
		st = &watched{}
		w.prs[n] = st
	}
	w.mu.Unlock()

	recheck := w.Recheck
	if recheck == 0 {
		recheck = DefaultRecheck
	}
	stale := st.outcome != nil && !st.outcome.Success() && recheck > 0 && !w.now().Before(st.evaluated.Add(recheck))
	if st.key == key && stale {
		// Same head: only a proof can have appeared. Ask the DNS first,
		// and check again (dialling the MX hosts) only when one did.
		st.evaluated = w.now()
		changed, err := w.proofsChanged(ctx, st.outcome)
		if err != nil {
			return err
		}
		stale = changed
	}
	if st.key != key || stale {
		st.evaluated = w.now()
		o, err := w.Door.evaluate(ctx, pr)
		if err != nil {
			return err
		}
		st.outcome, st.body = o, ""
		if o.Report.ServiceList {
			st.key, st.submitted = key, nil
			return nil
		}
		if o.Report.NothingToCheck() {
			// A pull request that does not touch the list is not
			// answered, unless an earlier head did and has a comment.
			c, err := w.Door.findComment(ctx, n)
			if err != nil {
				return err
			}
			if c == nil {
				st.key, st.submitted = key, nil
				return nil
			}
		}
		if o.Success() {
			// A head is submitted once: seeing it again (a label
			// changed, the service restarted) must not undo what was
			// decided about its domains since (a removal the owner
			// asked for, patterns a later pull request declared). The
			// bot's comment records the submitted head, so this holds
			// across restarts; a new push is a new submission.
			done := st.submittedHead == o.HeadSHA
			if !done {
				if done, err = w.Door.headSubmitted(ctx, n, o.HeadSHA); err != nil {
					return err
				}
			}
			var serr error
			if done {
				st.submitted = admittable(o)
			} else {
				st.submitted, serr = w.submit(ctx, o)
			}
			if serr != nil {
				// Not recorded as submitted, and the key is kept: the
				// next poll submits this head again.
				st.outcome = nil
				return serr
			}
			st.submittedHead, o.SubmittedHead = o.HeadSHA, o.HeadSHA
		} else {
			st.submitted = nil
		}
		adm, err := w.progress(ctx, st.submitted)
		if err != nil {
			return err
		}
		if err := w.Door.WriteComment(ctx, o, adm); err != nil {
			return err
		}
		st.body = w.Door.commentBody(o, adm)
		if err := w.Door.WriteStatus(ctx, o); err != nil {
			return err
		}
		st.key = key
		return nil
	}
	if len(st.submitted) == 0 {
		return nil
	}
	adm, err := w.progress(ctx, st.submitted)
	if err != nil {
		return err
	}
	body := w.Door.commentBody(st.outcome, adm)
	if body == st.body {
		return nil
	}
	if err := w.Door.WriteComment(ctx, st.outcome, adm); err != nil {
		return err
	}
	st.body = body
	return nil
}

// closedComment edits, once, the comment of a pull request that was
// closed (merged or not) after its domains were submitted: they stay
// submitted, since their owner proved control and the comment said the
// pull request need not be merged; a withdrawal is a removal request.
func (w *Watcher) closedComment(ctx context.Context, st *watched) error {
	// Missing from the list of open pull requests is not proof enough.
	pr, _, err := w.Door.GH.PullRequests.Get(ctx, w.Door.Owner, w.Door.Repo, st.outcome.Number)
	if err != nil {
		return fmt.Errorf("prdoor: reading pull request %d: %w", st.outcome.Number, err)
	}
	if pr.GetState() != "closed" {
		return nil
	}
	adm, err := w.progress(ctx, st.submitted)
	if err != nil {
		return err
	}
	o := *st.outcome
	o.State = "closed"
	return w.Door.WriteComment(ctx, &o, adm)
}

// proofsChanged reports whether any domain's ownership proof in o's report
// would now be found differently. A refused or unlinted report has no
// proofs: only a push changes it.
func (w *Watcher) proofsChanged(ctx context.Context, o *Outcome) (bool, error) {
	r := o.Report
	if r == nil || r.Refusal != nil || len(r.Problems) > 0 || w.Door.TXT == nil {
		return false, nil
	}
	for _, d := range r.Domains {
		if d.Proof.Code == prcheck.ProofLabel {
			continue
		}
		p, err := prcheck.VerifyProof(ctx, w.Door.TXT, d.Domain, o.URL, nil)
		if err != nil {
			return false, err
		}
		// A proof that changed, or a proven domain the checker could
		// not check (a failure of ours, not a finding).
		if p.Code != d.Proof.Code || p.Proven && d.CheckError != "" {
			return true, nil
		}
	}
	return false, nil
}

// submit hands each proven, passing added or changed domain to the
// lifecycle, and requests each proven removal, when the whole pull request
// passes. It returns the domains submitted for admission.
// The error is non-nil when the store could not take a domain (the head
// is then submitted again); a request the lifecycle refuses is logged.
func (w *Watcher) submit(ctx context.Context, o *Outcome) ([]string, error) {
	if !o.Success() {
		return nil, nil
	}
	var out []string
	var errs []error
	for _, d := range o.Report.Domains {
		ev := lifecycle.Evidence{By: lifecycle.ByPullRequest, Detail: evidence(d, o.URL)}
		if d.Kind == prcheck.Removed {
			_, err := w.Lifecycle.RemoveProven(ctx, d.Domain, ev)
			switch {
			case err == nil, errors.Is(err, lifecycle.ErrNotFound), errors.Is(err, lifecycle.ErrAlreadyRemoved):
			case refused(err):
				w.Door.log().Error("requesting a removal from a pull request", "domain", d.Domain, "pr", o.URL, "err", err)
			default:
				errs = append(errs, fmt.Errorf("prdoor: requesting the removal of %s from %s: %w", d.Domain, o.URL, err))
			}
			continue
		}
		r := lifecycle.Request{Domain: d.Domain, WantEnforce: d.Policy.Mode == "enforce", MXPatterns: d.Policy.MXs, Source: o.URL}
		ch, err := w.Lifecycle.AdmitProven(ctx, r, ev)
		switch {
		case err == nil:
		case refused(err):
			w.Door.log().Error("submitting a domain from a pull request", "domain", d.Domain, "pr", o.URL, "err", err)
			continue
		default:
			errs = append(errs, fmt.Errorf("prdoor: submitting %s from %s: %w", d.Domain, o.URL, err))
			continue
		}
		w.Door.log().Info("domain submitted by pull request", "domain", d.Domain, "pr", o.URL, "from", ch.From, "to", ch.To)
		out = append(out, d.Domain)
	}
	return out, errors.Join(errs...)
}

// refused reports whether the lifecycle refused a request (trying again
// changes nothing), as opposed to failing to store it.
func refused(err error) bool {
	for _, e := range []error{lifecycle.ErrInvalidRequest, lifecycle.ErrNotFound, lifecycle.ErrAlreadyActive, lifecycle.ErrAlreadyRemoved, lifecycle.ErrStateChanged} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// admittable returns the added and changed domains of a passing report:
// those submit hands to the lifecycle.
func admittable(o *Outcome) []string {
	var out []string
	for _, d := range o.Report.Domains {
		if d.Kind != prcheck.Removed {
			out = append(out, d.Domain)
		}
	}
	return out
}

func evidence(d prcheck.DomainReport, prURL string) string {
	if d.Proof.Code == prcheck.ProofLabel {
		return "removal approved by label on " + prURL
	}
	return "TXT " + d.Proof.Name + " names " + prURL
}

// progress reads the submitted domains' admission progress from the store.
func (w *Watcher) progress(ctx context.Context, domains []string) ([]prcheck.Admission, error) {
	if len(domains) == 0 {
		return nil, nil
	}
	now := w.now()
	var latest *store.ListRecord
	if l, err := w.Store.LatestList(ctx); err == nil {
		latest = &l
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("prdoor: reading the latest list: %w", err)
	}
	out := make([]prcheck.Admission, 0, len(domains))
	for _, name := range domains {
		d, err := w.Store.GetDomain(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("prdoor: reading %s: %w", name, err)
		}
		a := prcheck.Admission{Domain: name, State: string(d.State), Passes: d.ChecksPassed, Needed: w.MinChecks}
		days := time.Duration(w.MinDays) * 24 * time.Hour
		switch {
		case d.State != store.StateValidating:
		case d.PassingSince != nil:
			a.Earliest = d.PassingSince.Add(days)
		default:
			a.Earliest = now.Add(days)
		}
		if d.State == store.StateValidating && d.LastChecked != nil && d.FailingSince != nil {
			a.Failures = w.latestFailures(ctx, name)
		}
		if listed(d.State) && latest != nil {
			// List timestamps are whole seconds.
			if at, ok := w.admittedAt(ctx, name); ok && !latest.Timestamp.Before(at.Truncate(time.Second)) {
				a.Serial = latest.Serial
			}
		}
		out = append(out, a)
	}
	return out, nil
}

func listed(s store.State) bool {
	return s == store.StateTesting || s == store.StateEnforce || s == store.StateDemoted
}

// admittedAt is the time of the domain's latest validating → listed decision.
func (w *Watcher) admittedAt(ctx context.Context, name string) (time.Time, bool) {
	ds, err := w.Store.Decisions(ctx, name)
	if err != nil {
		return time.Time{}, false
	}
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].From == store.StateValidating && listed(ds[i].To) {
			return ds[i].At, true
		}
	}
	return time.Time{}, false
}

// latestFailures returns the error findings of the domain's latest check.
func (w *Watcher) latestFailures(ctx context.Context, name string) []validate.Finding {
	cs, err := w.Store.Checks(ctx, name, time.Time{}, 1)
	if err != nil || len(cs) == 0 || cs[0].Eligible {
		return nil
	}
	var res struct {
		Findings []validate.Finding `json:"findings"`
	}
	var fs []validate.Finding
	if json.Unmarshal(cs[0].Findings, &res) == nil && res.Findings != nil {
		fs = res.Findings
	} else {
		json.Unmarshal(cs[0].Findings, &fs)
	}
	var out []validate.Finding
	for _, f := range fs {
		if f.Severity == validate.SeverityError {
			out = append(out, f)
		}
	}
	return out
}
