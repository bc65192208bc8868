package main

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/benchseed"
	"github.com/starttls-preload/starttls-preload/store/backend"
)

// BenchmarkWebRoutes measures the handler of serve in process (no network,
// no load generator: the server's own cost per request, for profiling with
// -cpuprofile; cpu-ns/op is the process's CPU time per request) on a store of STARTTLS_PRELOAD_BENCH_DOMAINS seeded domains
// (default 10,000; scripts/bench-web.sh measures over loopback with
// 100,000). STARTTLS_PRELOAD_BENCH_WEB_DATA names an already seeded data
// directory to use instead (bench-web.sh keeps one).
//
//	go test -run '^$' -bench WebRoutes -benchtime 5s -cpuprofile cpu.out ./cmd/starttls-preload
func BenchmarkWebRoutes(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("STARTTLS_PRELOAD_BENCH_DOMAINS")); err == nil && v > 0 {
		n = v
	}
	dataDir := os.Getenv("STARTTLS_PRELOAD_BENCH_WEB_DATA")
	ctx := context.Background()
	if dataDir == "" {
		dataDir = b.TempDir()
		st, err := backend.Open(ctx, backend.Config{DataDir: dataDir})
		if err != nil {
			b.Fatal(err)
		}
		if err := benchseed.Seed(ctx, st, n, 4, time.Now(), nil); err != nil {
			b.Fatal(err)
		}
		st.Close()
	} else if v, err := strconv.Atoi(os.Getenv("STARTTLS_PRELOAD_BENCH_DOMAINS")); err != nil || v <= 0 {
		n = 100000
	}
	// A validator that reaches nothing: no resolver, no relay.
	b.Setenv("STARTTLS_PRELOAD_VALIDATE_RESOLVER", "127.0.0.1:9")
	b.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	b.Setenv("STARTTLS_PRELOAD_NOTIFY_SMTP_RELAY", "")
	cmd := newServeCmd()
	if err := cmd.ParseFlags([]string{"--data-dir", dataDir, "--listen", "127.0.0.1:8080"}); err != nil {
		b.Fatal(err)
	}
	b.Chdir(b.TempDir())
	c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir", "listen": "listen"})
	if err != nil {
		b.Fatal(err)
	}
	app, err := newServeApp(ctx, c, schedulerDeps{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Close() })
	if _, err := app.PublishStart(ctx); err != nil {
		b.Fatal(err)
	}
	h := app.Handler()
	etag := func() string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/policy-list.json", nil))
		return rec.Header().Get("ETag")
	}()

	for _, bm := range []struct {
		name string
		path func(i int) string
		hdr  http.Header
		want int // or, for the flood, 429 once the client's burst is spent
	}{
		{"status-page", func(i int) string { return "/domains/" + benchseed.Name(i) }, nil, http.StatusOK},
		{"api-status", func(i int) string { return "/api/v1/domains/" + benchseed.Name(i) }, nil, http.StatusOK},
		{"list-304", func(int) string { return "/policy-list.json" }, http.Header{"If-None-Match": {etag}}, http.StatusNotModified},
		// One client (httptest's 192.0.2.1) flooding the live check.
		{"check-flood", func(i int) string { return "/api/v1/check?domain=" + benchseed.Name(i) }, nil, http.StatusOK},
	} {
		b.Run(bm.name, func(b *testing.B) {
			// The first request pays once for what is then kept (the
			// current list parsed for the status pages): not timed.
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, bm.path(0), nil))
			b.ResetTimer()
			cpu0 := processCPU()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest(http.MethodGet, bm.path(rand.IntN(n)), nil)
					for k, v := range bm.hdr {
						req.Header[k] = v
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != bm.want && !(bm.name == "check-flood" && rec.Code == http.StatusTooManyRequests) {
						b.Fatalf("%s: %d, want %d", req.URL, rec.Code, bm.want)
					}
				}
			})
			// The process's CPU time per request: on a busy machine, a
			// steadier figure than the wall time.
			b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
