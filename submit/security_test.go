package submit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
