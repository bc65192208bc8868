package service

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/starttls-preload/starttls-preload/store/memstore"
)

// Wrap wraps the whole handler: a route's answer and the router's own 404
// and 405 answers go through it.
func TestWrapCoversEveryAnswer(t *testing.T) {
	svc, err := New(Config{
		Store:  memstore.New(),
		Routes: []Route{{"GET /page", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})}},
		Wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Wrapped", "yes")
				h.ServeHTTP(w, r)
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		code         int
	}{{"GET", "/page", 200}, {"GET", "/nope", 404}, {"POST", "/page", 405}} {
		rec := httptest.NewRecorder()
		svc.Handler().ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.code || rec.Header().Get("X-Wrapped") != "yes" {
			t.Errorf("%s %s: %d, headers %v", c.method, c.path, rec.Code, rec.Header())
		}
	}
}
