//go:build unix

package publish

import (
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// Environment of the child process of BenchmarkFetchPeakRSS.
const (
	rssEnvURL     = "STARTTLS_PRELOAD_RSS_URL" // "" = not a child; "none" = fetch nothing (the baseline)
	rssEnvKey     = "STARTTLS_PRELOAD_RSS_KEY"
	rssEnvMaxSize = "STARTTLS_PRELOAD_RSS_MAX_SIZE"
)

// TestFetchRSSChild is the child process of BenchmarkFetchPeakRSS: one
// Fetch into fresh directories, as the environment says, its error printed.
func TestFetchRSSChild(t *testing.T) {
	url := os.Getenv(rssEnvURL)
	if url == "" {
		t.Skip("the child process of BenchmarkFetchPeakRSS")
	}
	if url == "none" {
		fmt.Println("fetch-result: none")
		return
	}
	keys, err := listgen.ParsePublicKeys([]byte(os.Getenv(rssEnvKey)))
	if err != nil {
		t.Fatal(err)
	}
	maxSize, _ := strconv.ParseInt(os.Getenv(rssEnvMaxSize), 10, 64)
	dir := t.TempDir()
	for _, d := range []string{"postfix", "exim"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	_, err = Fetch(context.Background(), FetchOptions{
		URL: url, PublicKeys: keys, MaxSize: maxSize,
		StateDir:   filepath.Join(dir, "state"),
		PostfixMap: filepath.Join(dir, "postfix", "starttls-policy"),
		EximFile:   filepath.Join(dir, "exim", "starttls-policy"),
	})
	fmt.Printf("fetch-result: %v\n", err)
}

// BenchmarkFetchPeakRSS runs one fetch per iteration in a child process
// (this test binary, TestFetchRSSChild) and reports its peak resident set
// size (getrusage ru_maxrss): against an endless body and a gzip bomb
// (both refused at the default 256 MiB cap), for a 1,000,000-domain list
// installed in full, and for a child that fetches nothing (the baseline
// of the test binary itself).
func BenchmarkFetchPeakRSS(b *testing.B) {
	key := newKey(b)
	pem, err := listgen.MarshalPublicKey(key.Public())
	if err != nil {
		b.Fatal(err)
	}
	snap := snapshot(b, key, testList(11, 1))
	zeros := make([]byte, 64<<10)
	endless := badServer(b, func(w http.ResponseWriter, r *http.Request) {
		for {
			if _, err := w.Write(zeros); err != nil {
				return
			}
		}
	}, bytesHandler(snap.Sig))
	bomb := badServer(b, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		for {
			if _, err := gz.Write(zeros); err != nil {
				return
			}
		}
	}, bytesHandler(snap.Sig))
	var million string // started on first use: building it takes a while
	cases := []struct {
		name string
		url  func() string
		want string // in the child's result line
	}{
		{"baseline", func() string { return "none" }, "none"},
		{"endless-body", func() string { return endless }, "too large"},
		{"gzip-bomb", func() string { return bomb }, "too large"},
		{"million-domains", func() string {
			if million == "" {
				l := testList(10, 999_999)
				l.Timestamp, l.Expires = time.Now().Add(-time.Hour), time.Now().Add(7*24*time.Hour)
				ts := newTestServer(b, key, l)
				// The server compresses a list once, on the first request
				// that asks for gzip: not in the child's time.
				if resp, err := http.Get(ts.url()); err == nil {
					resp.Body.Close()
				}
				million = ts.url()
			}
			return million
		}, "<nil>"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			url := c.url()
			var peak int64
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestFetchRSSChild$", "-test.count=1")
				cmd.Env = append(os.Environ(), rssEnvURL+"="+url, rssEnvKey+"="+string(pem),
					rssEnvMaxSize+"="+strconv.Itoa(DefaultMaxSize))
				out, err := cmd.Output()
				if err != nil || !strings.Contains(string(out), "fetch-result: ") || !strings.Contains(string(out), c.want) {
					b.Fatalf("child: %v\n%s", err, out)
				}
				peak = max(peak, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) // KiB on Linux
			}
			b.ReportMetric(float64(peak)/1024, "MiB-peak-rss")
		})
	}
}
