package submit

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/validate"
)

// assertSecurityHeaders fails unless h carries the door's security headers.
func assertSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("%s: CSP %q", what, csp)
	}
	if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("X-Frame-Options") != "DENY" {
		t.Errorf("%s: headers %v", what, h)
	}
}

// Every answer carries the security headers, the router's own 404 and 405
// answers and redirects included, not only those of the door's handlers.
func TestSecurityHeadersOnEveryAnswer(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		name string
		r    req
	}{
		{"unknown page", req{path: "/nope"}},
		{"unknown API path", req{path: "/api/v1/nope"}},
		{"submissions API, GET", req{path: "/api/v1/submissions"}},
		{"extra path segments", req{path: "/domains/a.test/b/c"}},
		{"method not allowed", req{method: http.MethodPut, path: "/check"}},
		{"unclean path redirect", req{path: "/domains//a.test"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(c.r)
			if rec.Code < 300 {
				t.Fatalf("status %d, want a refusal or redirect", rec.Code)
			}
			assertSecurityHeaders(t, c.name, rec.Header())
		})
	}
}

// SecurityHeaders puts the headers on the answers of any handler it wraps.
func TestSecurityHeadersWrapper(t *testing.T) {
	rec := httptest.NewRecorder()
	SecurityHeaders(http.NotFoundHandler()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	assertSecurityHeaders(t, "wrapped 404", rec.Header())
}

// A stranger may submit someone else's domain with MX patterns and a mode
// of their choosing; the owner's postmaster gets the link. The link's page,
// its JSON twin and the mail say what pressing the button declares (the
// mode and every MX pattern), so that the owner does not prove a
// stranger's patterns blindly. (A later submission supersedes the token, so
// what the page shows is what the token proves.)
func TestConfirmShowsWhatIsDeclared(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	body := `{"domain":"example.test","contact":"someone@elsewhere.test","mode":"enforce","mx_patterns":["mx.example.test","*.attacker.test"]}`
	if rec := e.postJSON("/api/v1/submissions", body); rec.Code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", rec.Code, rec.Body.String())
	}
	ms := mails.all()
	if len(ms) != 1 {
		t.Fatalf("%d mails", len(ms))
	}
	for _, want := range []string{"*.attacker.test", "mx.example.test", "enforce"} {
		if !strings.Contains(ms[0].Body, want) {
			t.Errorf("the mail does not say %q:\n%s", want, ms[0].Body)
		}
	}
	link := tokenLink(t, ms[0].Body)
	page := e.get(link).Body.String()
	for _, want := range []string{`id="confirm-mode" data-mode="enforce"`, `id="confirm-patterns"`, `<code>*.attacker.test</code>`, `<code>mx.example.test</code>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the confirmation page does not show %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "someone@elsewhere.test") {
		t.Error("the confirmation page shows the contact")
	}
	api := e.get("/api" + "/v1" + strings.TrimPrefix(link, ""))
	var peek struct {
		Mode       string   `json:"mode"`
		MXPatterns []string `json:"mx_patterns"`
	}
	peek = decode[struct {
		Mode       string   `json:"mode"`
		MXPatterns []string `json:"mx_patterns"`
	}](t, api)
	if peek.Mode != "enforce" || len(peek.MXPatterns) != 2 {
		t.Errorf("the JSON twin: %s", api.Body.String())
	}
}

// blockingChecker holds every check until release is closed and says on
// started when one begins.
type blockingChecker struct {
	started chan string
	release chan struct{}
}

func (b *blockingChecker) Check(ctx context.Context, domain string) (*validate.Result, error) {
	b.started <- domain
	select {
	case <-b.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return passResult(domain), nil
}

// Live checks in flight are bounded for the whole door: visitors from many
// addresses asking for many distinct domains (each within its own limits)
// cannot start unbounded work; beyond the bound the answer is 503 with
// Retry-After and no check starts. A check that is cached or in flight is
// still shared.
func TestLiveChecksBounded(t *testing.T) {
	bc := &blockingChecker{started: make(chan string, 10), release: make(chan struct{})}
	e := newEnv(t, func(c *Config) { c.Checker = bc })
	e.srv.checks.maxInFlight = 2
	var wg sync.WaitGroup
	codes := make(chan int, 3)
	for i, d := range []string{"a.test", "b.test"} {
		wg.Go(func() {
			codes <- e.do(req{path: "/api/v1/check?domain=" + d, remote: fmt.Sprintf("198.51.100.%d:1234", i+1)}).Code
		})
		<-bc.started
	}
	rec := e.do(req{path: "/api/v1/check?domain=c.test", remote: "198.51.100.9:1234"})
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("a third live check: %d %v %s", rec.Code, rec.Header(), rec.Body.String())
	}
	// One in flight is shared, not refused.
	wg.Go(func() {
		codes <- e.do(req{path: "/api/v1/check?domain=a.test", remote: "198.51.100.10:1234"}).Code
	})
	close(bc.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("a check in the bound: %d", c)
		}
	}
	select {
	case d := <-bc.started:
		t.Errorf("a check of %s started beyond the bound", d)
	default:
	}
	// Once the checks are done, new ones start again.
	bc.release = make(chan struct{})
	close(bc.release)
	go func() { <-bc.started }()
	if rec := e.do(req{path: "/api/v1/check?domain=c.test", remote: "198.51.100.9:1234"}); rec.Code != http.StatusOK {
		t.Errorf("after the others finished: %d %s", rec.Code, rec.Body.String())
	}
}

// A submission whose patterns include "*.<public suffix>" beside the real
// MX host is refused, nothing stored and nothing mailed.
func TestSubmitPatternOverPublicSuffix(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	rec := e.postJSON("/api/v1/submissions", `{"domain":"example.test","contact":"a@b.test","mode":"enforce","mx_patterns":["mx.example.test","*.co.uk"]}`)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "public suffix") {
		t.Errorf("%d %s", rec.Code, rec.Body.String())
	}
	if d, p, _ := stored(t, e.st); d != 0 || p != 0 || len(mails.all()) != 0 {
		t.Errorf("stored %d domains, %d proofs; %d mails", d, p, len(mails.all()))
	}
}

// Text a hostile mail server controls (its MX name from DNS, its banner in
// a finding's message, its certificate's subject) is shown escaped on the
// check page, and the JSON twin carries it as data.
func TestHostileServerTextEscaped(t *testing.T) {
	const evil = `"><img src=x onerror=alert(1)><script>alert(2)</script>`
	e := newEnv(t)
	e.checker.answer = func(d string) *validate.Result {
		r := failResult(d)
		r.MXs[0].Host = "mx." + d + evil
		r.MXs[0].Addresses[0].CertSubject = "CN=" + evil
		r.MXs[0].Addresses[0].CertIssuer = evil
		r.Findings = append(r.Findings, validate.Finding{Code: "starttls.not_offered", Severity: validate.SeverityError,
			Summary: evil, Message: "220 " + evil, Host: r.MXs[0].Host, IP: "192.0.2.10"})
		return r
	}
	page := e.get("/check?domain=evil.test").Body.String()
	if strings.Contains(page, "<img") || strings.Contains(page, "<script") {
		t.Errorf("hostile text reached the page unescaped:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;alert(2)") {
		t.Errorf("the hostile text is not shown escaped:\n%s", page)
	}
}

// A stranger posting made-up tokens for a domain (cheap: no token is ever
// guessed, 128 bits) does not lock its owner out of the mailed link: token
// uses are limited per client address, not per domain, so the owner's
// press of the button is not answered 429.
func TestBogusTokensDoNotLockOutTheOwner(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails), func(c *Config) {
		c.Limits.VerifyPerDomain = Limit{Every: time.Hour, Burst: 2}
	})
	if rec := e.postJSON("/api/v1/submissions", submitJSON("example.test")); rec.Code != http.StatusAccepted {
		t.Fatalf("submit: %d %s", rec.Code, rec.Body.String())
	}
	for i := range 5 { // the stranger, from several addresses
		rec := e.do(req{method: http.MethodPost, path: "/api/v1/domains/example.test/confirm", body: `{"token":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}`,
			ctype: "application/json", remote: fmt.Sprintf("203.0.113.%d:4000", i+1)})
		if rec.Code == http.StatusOK {
			t.Fatal("a made-up token was accepted")
		}
	}
	link := tokenLink(t, mails.all()[0].Body)
	owner := "198.51.100.77:5000"
	page := e.do(req{path: link, remote: owner})
	if page.Code != http.StatusOK {
		t.Fatalf("the owner's GET of the link: %d %s", page.Code, page.Body.String())
	}
	tok := link[strings.Index(link, "token=")+len("token="):]
	rec := e.do(req{method: http.MethodPost, path: "/api/v1/domains/example.test/confirm", body: `{"token":"` + tok + `"}`, ctype: "application/json", remote: owner})
	if rec.Code != http.StatusOK {
		t.Fatalf("the owner's confirmation: %d %s", rec.Code, rec.Body.String())
	}
}

// The security headers are stored under their canonical keys (set into
// the header map directly, without Header.Set's canonicalisation).
func TestSecurityHeaderKeysCanonical(t *testing.T) {
	for _, h := range securityHeaders {
		if c := http.CanonicalHeaderKey(h.key); c != h.key || len(h.value) != 1 || cap(h.value) != 1 {
			t.Errorf("%q: canonical %q, value %q (cap %d)", h.key, c, h.value, cap(h.value))
		}
	}
}
