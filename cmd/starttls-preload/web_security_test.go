package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

// serve's every answer carries the web door's security headers: the
// list files, the status API's and the router's 404 and 405 answers,
// the metrics, not only the door's pages.
func TestServeSecurityHeadersOnEveryAnswer(t *testing.T) {
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	c := testServeConfig(t, t.TempDir(), "127.0.0.1:0")
	ctx := context.Background()
	app := testServeApp(ctx, t, c, schedulerDeps{})
	if _, err := app.builder.Publish(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/domains/a.test/b/c"},
		{"GET", "/api/v1/nope"},
		{"PUT", "/check"},
		{"GET", "/policy-list.json"},
		{"GET", "/metrics"},
		{"GET", "/"},
	} {
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") ||
			h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s %s (%d): headers %v", tc.method, tc.path, rec.Code, h)
		}
	}
}
