package submit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// benchEnv is a door over a domain with a full history (100 checks) and
// a published list.
func benchEnv(b *testing.B) *testEnv {
	t := &testing.T{}
	e := newEnv(t)
	ctx := context.Background()
	since := t0.Add(-30 * 24 * time.Hour)
	if err := e.st.AddDomain(ctx, store.Domain{Name: "bench.test", State: store.StateEnforce, MXPatterns: []string{"mx.bench.test"}, PassingSince: &since, NextCheck: t0}); err != nil {
		b.Fatal(err)
	}
	f, _ := json.Marshal(passResult("bench.test").Findings)
	for i := range 100 {
		at := t0.Add(time.Duration(i-100) * time.Hour)
		if err := e.st.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "bench.test", At: at, Eligible: true, MXHosts: []string{"mx.bench.test", "mx2.bench.test"}, Findings: f}, NextCheck: at.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	e.arch.publish(t, 1, t0, map[string]string{"bench.test": "enforce"})
	return e
}

// BenchmarkStatus measures the status page and its JSON twin, handler
// only (go test -bench Status ./submit).
func BenchmarkStatus(b *testing.B) {
	e := benchEnv(b)
	for _, path := range []string{"/domains/bench.test", "/api/v1/domains/bench.test"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rec := httptest.NewRecorder()
					e.srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
					if rec.Code != 200 {
						b.Fatalf("%d", rec.Code)
					}
				}
			})
		})
	}
}
