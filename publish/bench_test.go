package publish

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFetchNotModified is one run of the client when the list did not
// change: lock, state, conditional GET over loopback answered 304, checks
// of the installed files.
func BenchmarkFetchNotModified(b *testing.B) {
	key := newKey(b)
	ts := newTestServer(b, key, testList(10, 1000))
	c := newClient(b, ts.url(), key.Public())
	c.opts.Reload = ""
	if _, err := c.fetch(b); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		res, err := Fetch(ctx, c.opts)
		if err != nil || !res.NotModified || res.Changed {
			b.Fatalf("%+v %v", res, err)
		}
	}
}

// BenchmarkFetchMillion downloads, verifies, parses, renders and installs
// (Postfix texthash table and Exim file) a list of 1,000,000 domains into a
// fresh state, then times postmap hash: on the rendered table separately.
func BenchmarkFetchMillion(b *testing.B) {
	key := newKey(b)
	l := testList(10, 999_999)
	ts := newTestServer(b, key, l)
	snap, err := ts.archive.Current(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(snap.List))/1e6, "MB-list")
	ctx := context.Background()
	// The client's debug log gives each step's time.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var last *client
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		c := newClient(b, ts.url(), key.Public())
		c.opts.Reload = ""
		for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		b.StartTimer()
		if res, err := Fetch(ctx, c.opts); err != nil || !res.Changed {
			b.Fatalf("%+v %v", res, err)
		}
		last = c
	}
	b.StopTimer()
	postmap, err := exec.LookPath("postmap")
	if err != nil {
		return
	}
	cf := b.TempDir()
	os.WriteFile(filepath.Join(cf, "main.cf"), nil, 0o644)
	t0 := time.Now()
	if out, err := exec.Command(postmap, "-c", cf, "hash:"+last.opts.PostfixMap).CombinedOutput(); err != nil {
		b.Fatalf("postmap: %v %s", err, out)
	}
	b.ReportMetric(time.Since(t0).Seconds(), "s-postmap")
}

// BenchmarkHandlerConditionalGET is the server answering conditional GETs
// of the current list (304) over loopback TCP, clients with keep-alive.
// req/s is the figure to read.
func BenchmarkHandlerConditionalGET(b *testing.B) {
	key := newKey(b)
	ts := newTestServer(b, key, testList(10, 1000))
	resp, err := http.Get(ts.url())
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	var n304 atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer client.CloseIdleConnections()
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, ts.url(), nil)
			req.Header.Set("If-None-Match", etag)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusNotModified {
				n304.Add(1)
			}
		}
	})
	b.ReportMetric(float64(n304.Load())/time.Since(start).Seconds(), "req/s")
	if n304.Load() != int64(b.N) {
		b.Fatalf("%d of %d answers were 304", n304.Load(), b.N)
	}
}
