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
