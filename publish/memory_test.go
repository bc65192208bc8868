package publish

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"os"
	"runtime"
	"testing"
)

// countingReader is an endless stream of 'x' that counts what was read.
type countingReader struct{ n int64 }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	r.n += int64(len(p))
	return len(p), nil
}

// The bounded copy reads at most limit+1 bytes of an endless stream.
func TestCopyAtMost(t *testing.T) {
	for _, limit := range []int64{0, 1, 100, 1 << 20} {
		src := &countingReader{}
		var dst bytes.Buffer
		_, err := copyAtMost(&dst, src, limit)
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("limit %d: err = %v, want ErrTooLarge", limit, err)
		}
		if src.n > limit+1 || int64(dst.Len()) > limit {
			t.Errorf("limit %d: read %d bytes, wrote %d", limit, src.n, dst.Len())
		}
	}
	n, err := copyAtMost(io.Discard, bytes.NewReader(make([]byte, 100)), 100)
	if err != nil || n != 100 {
		t.Errorf("exactly the limit: %d, %v", n, err)
	}
}

// allocatedDuring returns the bytes the Go heap allocated while f ran
// (this process: client and test server together).
func allocatedDuring(f func()) uint64 {
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	f()
	runtime.ReadMemStats(&b)
	return b.TotalAlloc - a.TotalAlloc
}

// An endless body and a gzip bomb are refused at the size cap, and what
// fetch allocates on the way does not grow with the cap (the body goes to
// a file, not to a growing buffer). RSS is measured by
// BenchmarkFetchPeakRSS.
func TestFetchEndlessBodiesStopAtTheCap(t *testing.T) {
	key := newKey(t)
	snap := snapshot(t, key, testList(11, 1))
	zeros := make([]byte, 64<<10)
	tests := []struct {
		name string
		body http.HandlerFunc
	}{
		{"endless body", func(w http.ResponseWriter, r *http.Request) {
			for {
				if _, err := w.Write(zeros); err != nil {
					return
				}
			}
		}},
		{"gzip bomb", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Encoding", "gzip")
			gz, _ := gzip.NewWriterLevel(w, gzip.BestCompression)
			for {
				if _, err := gz.Write(zeros); err != nil {
					return
				}
			}
		}},
	}
	const maxSize = 64 << 20
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, badServer(t, tt.body, bytesHandler(snap.Sig)), key.Public())
			c.opts.MaxSize = maxSize
			for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
				os.MkdirAll(p[:len(p)-len("/starttls-policy")], 0o755)
			}
			var err error
			alloc := allocatedDuring(func() { _, err = Fetch(t.Context(), c.opts) })
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if alloc > maxSize/4 {
				t.Errorf("allocated %d MiB for a body refused at %d MiB", alloc>>20, maxSize>>20)
			}
			if left := staleTemps(c.opts.StateDir + "/" + ListFile); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}
