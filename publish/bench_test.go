//go:build unix

package publish

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
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
	c0 := cpuTime(syscall.RUSAGE_SELF)
	for b.Loop() {
		res, err := Fetch(ctx, c.opts)
		if err != nil || !res.NotModified || res.Changed {
			b.Fatalf("%+v %v", res, err)
		}
	}
	b.ReportMetric((cpuTime(syscall.RUSAGE_SELF)-c0).Seconds()*1e3/float64(b.N), "cpu-ms/op")
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
	// The server compresses a list once, on the first request that asks
	// for gzip: do that before timing the client.
	if resp, err := http.Get(ts.url()); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	ctx := context.Background()
	// The client's debug log gives each step's time.
	defer slog.SetDefault(slog.Default())
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})))
	var last *client
	var cpu time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		c := newClient(b, ts.url(), key.Public())
		c.opts.Reload = ""
		for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
		b.StartTimer()
		c0 := cpuTime(syscall.RUSAGE_SELF)
		if res, err := Fetch(ctx, c.opts); err != nil || !res.Changed {
			b.Fatalf("%+v %v", res, err)
		}
		cpu += cpuTime(syscall.RUSAGE_SELF) - c0
		last = c
	}
	b.StopTimer()
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	postmap, err := exec.LookPath("postmap")
	if err != nil {
		return
	}
	cf := b.TempDir()
	os.WriteFile(filepath.Join(cf, "main.cf"), []byte("myhostname = mta.lab.test\n"), 0o644)
	backdate(b, filepath.Join(cf, "main.cf")) // else postmap waits for it to age
	t0, c0 := time.Now(), cpuTime(syscall.RUSAGE_CHILDREN)
	if out, err := exec.Command(postmap, "-c", cf, "hash:"+last.opts.PostfixMap).CombinedOutput(); err != nil {
		b.Fatalf("postmap: %v %s", err, out)
	}
	b.ReportMetric(time.Since(t0).Seconds(), "s-postmap")
	b.ReportMetric((cpuTime(syscall.RUSAGE_CHILDREN) - c0).Seconds(), "cpu-s-postmap")
}

// cpuTime is the user+system CPU time of this process (RUSAGE_SELF) or of
// its waited-for children (RUSAGE_CHILDREN): on a shared machine it says
// what a step costs when wall time says mostly how busy the machine was.
func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(who, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
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
	start, c0 := time.Now(), cpuTime(syscall.RUSAGE_SELF)
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
	// Server and load generator share the process: this is a lower bound
	// of what the server alone does with one CPU second.
	b.ReportMetric(float64(n304.Load())/(cpuTime(syscall.RUSAGE_SELF)-c0).Seconds(), "req/cpu-s")
	if n304.Load() != int64(b.N) {
		b.Fatalf("%d of %d answers were 304", n304.Load(), b.N)
	}
}
