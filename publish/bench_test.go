//go:build unix

package publish

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// BenchmarkHandlerMillionSig is the list server, in a process of its own
// (this test binary run as TestServeArchiveHelper), answering requests for
// files of a 1,000,000-domain list over loopback TCP from one keep-alive
// client: the signature of the current list and of the same list by
// serial (no longer current), a HEAD and a 1 KiB range of the list by
// serial. ns/op is the latency of one request. For the server process:
// peak-rss-growth-MB is the high-water mark of its resident memory during
// the requests above what it was before them (/proc/PID/status VmHWM, reset
// through /proc/PID/clear_refs), rss-growth-MB its growth at the end, and
// rss-MB its resident memory then (the current list, once asked for, is
// held in memory).
func BenchmarkHandlerMillionSig(b *testing.B) {
	key := newKey(b)
	ts := newTestServer(b, key, testList(10, 999_999), testList(11, 999_999))
	ts.srv.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestServeArchiveHelper$")
	cmd.Env = append(os.Environ(), serveHelperEnv+"="+ts.archive.Dir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close() // the server stops when its input ends
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("server: %v", err)
	}
	base := "http://" + strings.TrimSpace(line)
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	for _, bc := range []struct {
		name, method, path, rng string
		status                  int
	}{
		{"archived-sig", http.MethodGet, "/v/10/" + SigFile, "", http.StatusOK},
		{"archived-list-head", http.MethodHead, "/v/10/" + ListFile, "", http.StatusOK},
		{"archived-list-range", http.MethodGet, "/v/10/" + ListFile, "bytes=1000-2023", http.StatusPartialContent},
		{"current-sig", http.MethodGet, "/" + SigFile, "", http.StatusOK},
	} {
		b.Run(bc.name, func(b *testing.B) {
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}
			defer client.CloseIdleConnections()
			get := func() {
				req, _ := http.NewRequest(bc.method, base+bc.path, nil)
				if bc.rng != "" {
					req.Header.Set("Range", bc.rng)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != bc.status {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			get() // connection and caches warm
			rss0 := statusKB(b, status, "VmRSS")
			os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", cmd.Process.Pid), []byte("5"), 0) // reset VmHWM
			b.ResetTimer()
			for b.Loop() {
				get()
			}
			b.StopTimer()
			rss := statusKB(b, status, "VmRSS")
			b.ReportMetric(float64(statusKB(b, status, "VmHWM")-rss0)/1024, "peak-rss-growth-MB")
			b.ReportMetric(float64(rss-rss0)/1024, "rss-growth-MB")
			b.ReportMetric(float64(rss)/1024, "rss-MB")
		})
	}
}

const serveHelperEnv = "STARTTLS_PRELOAD_BENCH_SERVE_ARCHIVE"

// TestServeArchiveHelper is BenchmarkHandlerMillionSig's server process:
// it serves the archive named in its environment on a loopback port,
// prints the address, and stops when its standard input ends.
func TestServeArchiveHelper(t *testing.T) {
	dir := os.Getenv(serveHelperEnv)
	if dir == "" {
		t.Skip("the server process of BenchmarkHandlerMillionSig")
	}
	a, err := OpenArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(a, nil, ""), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	fmt.Println(ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	srv.Close()
}

// statusKB reads one "Name: N kB" line of a /proc/PID/status file.
func statusKB(b *testing.B, file, name string) int64 {
	b.Helper()
	st, err := os.ReadFile(file)
	if err != nil {
		b.Skipf("no %s: %v", file, err)
	}
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return n
			}
		}
	}
	b.Fatalf("no %s in %s", name, file)
	return 0
}
