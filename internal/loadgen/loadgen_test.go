package loadgen

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// server counts requests by client IP and path; it limits /limited to
// clients other than 127.0.0.3 with a 429 and answers /etag conditionally.
type server struct {
	mu     sync.Mutex
	byIP   map[string]int
	byPath map[string]int
}

func newServer(t *testing.T) (*server, *httptest.Server) {
	s := &server{byIP: map[string]int{}, byPath: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		ip, _, _ := net.SplitHostPort(r.RemoteAddr)
		s.mu.Lock()
		s.byIP[ip]++
		s.byPath[r.URL.Path]++
		s.mu.Unlock()
		switch {
		case r.URL.Path == "/limited" && ip != "127.0.0.3":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case r.URL.Path == "/etag":
			w.Header().Set("ETag", `"v1"`)
			if r.Header.Get("If-None-Match") == `"v1"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			w.Write([]byte("full body"))
		default:
			w.Write([]byte("ok"))
		}
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return s, ts
}

func TestRunCountsEveryAnswer(t *testing.T) {
	s, ts := newServer(t)
	r, err := Run(context.Background(), Load{URL: ts.URL + "/d/{i}", Range: 3, Concurrency: 4, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	total := 0
	for p, n := range s.byPath {
		if p != "/d/0" && p != "/d/1" && p != "/d/2" {
			t.Errorf("requested %s, outside the range", p)
		}
		total += n
	}
	if r.Requests == 0 || r.Requests != total || r.Status["200"] != total || r.Errors != 0 {
		t.Errorf("result %v; the server saw %d requests", r, total)
	}
	if r.Bytes != int64(2*total) {
		t.Errorf("%d bytes read, want %d", r.Bytes, 2*total)
	}
	if !(r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max && r.Max > 0) {
		t.Errorf("percentiles out of order: %v", r)
	}
}

// TestFloodFromOneAddressMeasureFromAnother: two loads bound to two
// loopback addresses are two client IPs to the server.
func TestFloodFromOneAddressMeasureFromAnother(t *testing.T) {
	s, ts := newServer(t)
	res, err := RunAll(context.Background(),
		Load{Name: "flood", URL: ts.URL + "/limited", LocalAddr: "127.0.0.2", Concurrency: 4, Duration: 100 * time.Millisecond},
		Load{Name: "measured", URL: ts.URL + "/limited", LocalAddr: "127.0.0.3", Concurrency: 1, Duration: 100 * time.Millisecond},
	)
	if err != nil {
		t.Fatal(err)
	}
	flood, measured := res[0], res[1]
	if flood.Requests == 0 || flood.Status["429"] != flood.Requests || flood.RetryAfter != flood.Requests {
		t.Errorf("flood: %v, want only 429s with Retry-After", flood)
	}
	if measured.Requests == 0 || measured.Status["200"] != measured.Requests {
		t.Errorf("measured: %v, want only 200s", measured)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byIP["127.0.0.2"] != flood.Requests || s.byIP["127.0.0.3"] != measured.Requests || len(s.byIP) != 2 {
		t.Errorf("server saw %v; flood %d, measured %d", s.byIP, flood.Requests, measured.Requests)
	}
}

func TestConditionalSendsTheETag(t *testing.T) {
	_, ts := newServer(t)
	r, err := Run(context.Background(), Load{URL: ts.URL + "/etag", Conditional: true, Concurrency: 2, Duration: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Status["304"] != r.Requests || r.Bytes != 0 {
		t.Errorf("%v, want only 304s", r)
	}
	if _, err := Run(context.Background(), Load{URL: ts.URL + "/plain", Conditional: true}); !errors.Is(err, ErrConfig) {
		t.Errorf("conditional load of a URL without ETag: %v, want ErrConfig", err)
	}
}

// TestRateSendsTheDueRequests: an open-loop load sends the requests due
// within its duration, no more (request i is due at i/rate).
func TestRateSendsTheDueRequests(t *testing.T) {
	s, ts := newServer(t)
	r, err := Run(context.Background(), Load{URL: ts.URL + "/paced", Rate: 100, Concurrency: 3, Duration: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 10 || r.Errors != 0 {
		t.Errorf("%v, want the 10 requests due in 100 ms at 100/s", r)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPath["/paced"] != 10 {
		t.Errorf("server saw %d", s.byPath["/paced"])
	}
}

func TestErrorsCounted(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r, err := Run(context.Background(), Load{URL: "http://" + addr + "/", Duration: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Errors == 0 || r.Requests != 0 || !strings.Contains(r.FirstError, "refused") {
		t.Errorf("%v, want connection errors", r)
	}
}

func TestBadLoads(t *testing.T) {
	for _, l := range []Load{
		{URL: "http://127.0.0.1:1/{i}"},
		{URL: "http://127.0.0.1:1/{i}", Range: 2, Conditional: true},
		{URL: "http://127.0.0.1:1/", LocalAddr: "localhost"},
	} {
		if _, err := Run(context.Background(), l); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v, want ErrConfig", l, err)
		}
	}
}

func TestQuantileNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i))
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0.001, 1}, {0.9, 90}} {
		if got := quantile(s, tt.q); got != tt.want {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %v", got)
	}
	if got := quantile([]time.Duration{7}, 0.99); got != 7 {
		t.Errorf("quantile of one = %v", got)
	}
}
