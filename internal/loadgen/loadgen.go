// Package loadgen is the HTTP load generator behind the web speed figures
// in BENCHMARKS.md (cmd/loadgen, scripts/bench-web.sh). On loopback, it
// sends GET requests to URLs from a number of concurrent clients for a
// duration, and reports requests per second, the status codes and the
// latency percentiles of every request (exact: every sample is kept and
// sorted).
//
// A Load can bind its client connections to one local address (for
// example 127.0.0.2), so that the server sees each load as a different
// client IP without any proxy header: the flood and the measured client of
// the rate-limit figure are two Loads run together (RunAll) from two
// loopback addresses.
//
// A Load with a Rate is open-loop: request i is due at start + i/Rate and
// its latency is counted from when it was due, not from when a client got
// round to sending it, so a server that stalls is charged for the requests
// queued behind the stall (no coordinated omission). A Load without a Rate
// is closed-loop: each client sends its next request as soon as the last
// answer was read.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// ErrConfig is returned for a Load that cannot run.
var ErrConfig = errors.New("loadgen: bad configuration")

// Load is one stream of requests.
type Load struct {
	Name string // label in reports
	// URL is requested; every "{i}" in it is replaced by a number in
	// [0, Range), drawn at random for each request (Range > 0).
	URL   string
	Range int
	// Header is sent with every request.
	Header http.Header
	// Conditional first fetches each URL once and then sends its ETag in
	// If-None-Match (as a list fetcher does), so the server may answer 304.
	// Only for URLs without "{i}".
	Conditional bool
	// Concurrency is the number of clients (default 1), each with its
	// own keep-alive connection.
	Concurrency int
	// Duration of the run (default 10 s).
	Duration time.Duration
	// Rate, if positive, is the target of requests per second (open loop).
	Rate float64
	// LocalAddr, if set, is the local IP the connections are bound to.
	LocalAddr string
	// Timeout bounds one request (default 10 s).
	Timeout time.Duration
}

// Result is what one Load measured.
type Result struct {
	Name        string         `json:"name"`
	URL         string         `json:"url"`
	LocalAddr   string         `json:"local_addr,omitempty"`
	Concurrency int            `json:"concurrency"`
	Rate        float64        `json:"target_rate,omitempty"`
	Elapsed     time.Duration  `json:"elapsed_ns"`
	Requests    int            `json:"requests"` // answered, whatever the status
	Errors      int            `json:"errors"`   // no answer (connection error, timeout)
	FirstError  string         `json:"first_error,omitempty"`
	Status      map[string]int `json:"status"` // answers by status code
	Bytes       int64          `json:"bytes"`  // body bytes read
	RPS         float64        `json:"requests_per_second"`
	P50         time.Duration  `json:"p50_ns"`
	P90         time.Duration  `json:"p90_ns"`
	P99         time.Duration  `json:"p99_ns"`
	Max         time.Duration  `json:"max_ns"`

	// RetryAfter counts 429 answers that carried a Retry-After header.
	RetryAfter int `json:"retry_after"`

	latencies []time.Duration // of answered requests, sorted
}

// Quantile returns the latency below which the fraction q of the
// answered requests fall (nearest rank).
func (r *Result) Quantile(q float64) time.Duration {
	return quantile(r.latencies, q)
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999999) - 1 // nearest rank: ⌈q·n⌉
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// String is one line of the report.
func (r *Result) String() string {
	codes := make([]string, 0, len(r.Status))
	for c, n := range r.Status {
		codes = append(codes, fmt.Sprintf("%s×%d", c, n))
	}
	sort.Strings(codes)
	s := fmt.Sprintf("%-10s %8.0f req/s  p50 %s  p90 %s  p99 %s  max %s  %d requests in %s, c=%d",
		r.Name, r.RPS, ms(r.P50), ms(r.P90), ms(r.P99), ms(r.Max), r.Requests, r.Elapsed.Round(time.Millisecond), r.Concurrency)
	if r.Rate > 0 {
		s += fmt.Sprintf(" target %.0f/s", r.Rate)
	}
	if r.LocalAddr != "" {
		s += " from " + r.LocalAddr
	}
	s += "  [" + strings.Join(codes, " ") + "]"
	if r.Errors > 0 {
		s += fmt.Sprintf("  %d errors (first: %s)", r.Errors, r.FirstError)
	}
	return s
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// RunAll runs the loads at the same time and returns their results in
// the same order.
func RunAll(ctx context.Context, loads ...Load) ([]*Result, error) {
	res := make([]*Result, len(loads))
	errs := make([]error, len(loads))
	var wg sync.WaitGroup
	for i, l := range loads {
		wg.Go(func() { res[i], errs[i] = Run(ctx, l) })
	}
	wg.Wait()
	return res, errors.Join(errs...)
}

// Run runs one load and returns what it measured. An error means the load
// could not run at all; failed requests are counted in the result.
func Run(ctx context.Context, l Load) (*Result, error) {
	if l.Concurrency <= 0 {
		l.Concurrency = 1
	}
	if l.Duration <= 0 {
		l.Duration = 10 * time.Second
	}
	if l.Timeout <= 0 {
		l.Timeout = 10 * time.Second
	}
	if l.Name == "" {
		l.Name = l.URL
	}
	if strings.Contains(l.URL, "{i}") && l.Range <= 0 {
		return nil, fmt.Errorf("%w: %s has {i} but no range", ErrConfig, l.URL)
	}
	if l.Conditional && strings.Contains(l.URL, "{i}") {
		return nil, fmt.Errorf("%w: a conditional load needs one URL, not %s", ErrConfig, l.URL)
	}
	client, err := newClient(l)
	if err != nil {
		return nil, err
	}
	defer client.CloseIdleConnections()

	header := l.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	if l.Conditional {
		etag, err := fetchETag(ctx, client, l.URL, header)
		if err != nil {
			return nil, err
		}
		header.Set("If-None-Match", etag)
	}

	var (
		mu  sync.Mutex
		res = &Result{Name: l.Name, URL: l.URL, LocalAddr: l.LocalAddr, Concurrency: l.Concurrency, Rate: l.Rate, Status: map[string]int{}}
		seq atomic.Int64 // open loop: the next request's number
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(l.Duration)
	runCtx, cancel := context.WithDeadline(ctx, end.Add(l.Timeout))
	defer cancel()
	for w := range l.Concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			var (
				lat        []time.Duration
				status     = map[int]int{}
				nerr       int
				firstErr   string
				bytes      int64
				retryAfter int
			)
			for {
				sent := time.Now()
				if l.Rate > 0 {
					i := seq.Add(1) - 1
					due := start.Add(time.Duration(float64(i) / l.Rate * float64(time.Second)))
					if !due.Before(end) {
						break
					}
					if d := time.Until(due); d > 0 {
						time.Sleep(d) // pacing the open loop, not waiting for a result
					}
					sent = due
				} else if !sent.Before(end) {
					break
				}
				url := l.URL
				if l.Range > 0 {
					url = strings.ReplaceAll(url, "{i}", strconv.Itoa(rng.IntN(l.Range)))
				}
				code, n, ra, err := get(runCtx, client, url, header)
				if err != nil {
					if runCtx.Err() != nil {
						break
					}
					if nerr == 0 {
						firstErr = err.Error()
					}
					nerr++
					continue
				}
				lat = append(lat, time.Since(sent))
				status[code]++
				bytes += n
				if code == http.StatusTooManyRequests && ra {
					retryAfter++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.latencies = append(res.latencies, lat...)
			for c, n := range status {
				res.Status[strconv.Itoa(c)] += n
			}
			if res.Errors == 0 && nerr > 0 {
				res.FirstError = firstErr
			}
			res.Errors += nerr
			res.Bytes += bytes
			res.RetryAfter += retryAfter
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.latencies)
	res.Requests = len(res.latencies)
	res.RPS = float64(res.Requests) / res.Elapsed.Seconds()
	res.P50, res.P90, res.P99 = res.Quantile(0.50), res.Quantile(0.90), res.Quantile(0.99)
	if n := len(res.latencies); n > 0 {
		res.Max = res.latencies[n-1]
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// client sends a load's requests. It is fasthttp's HostClient rather than
// net/http's: the load generator runs on the cores of the server it
// measures, and net/http's client hands each request between three
// goroutines (caller, writer, reader), which cost ~45 µs more CPU per
// status page request here (BENCHMARKS.md, "Web"). Each client goroutine
// does its own write and read on its keep-alive connection.
type client struct {
	hc      *fasthttp.HostClient
	timeout time.Duration
}

// newClient returns a client of the host of l.URL with one keep-alive
// connection per worker, bound to l.LocalAddr when set.
func newClient(l Load) (*client, error) {
	u, err := url.Parse(strings.ReplaceAll(l.URL, "{i}", "0"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http or https URL", ErrConfig, l.URL)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	d := &net.Dialer{Timeout: l.Timeout}
	if l.LocalAddr != "" {
		ip := net.ParseIP(l.LocalAddr)
		if ip == nil {
			return nil, fmt.Errorf("%w: local address %q is not an IP", ErrConfig, l.LocalAddr)
		}
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return &client{timeout: l.Timeout, hc: &fasthttp.HostClient{
		Addr:                     addr,
		IsTLS:                    u.Scheme == "https",
		Dial:                     func(a string) (net.Conn, error) { return d.Dial("tcp", a) },
		MaxConns:                 l.Concurrency,
		MaxConnWaitTimeout:       l.Timeout, // wait for a connection, never fail for want of one
		MaxIdleConnDuration:      time.Minute,
		ReadTimeout:              l.Timeout,
		WriteTimeout:             l.Timeout,
		NoDefaultUserAgentHeader: true,
		DisablePathNormalizing:   true, // send the path as written
	}}, nil
}

// CloseIdleConnections closes the connections.
func (c *client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// do requests url with the header h and reads the whole answer; the
// response is the caller's to release.
func (c *client) do(ctx context.Context, url string, h http.Header) (*fasthttp.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	req := fasthttp.AcquireRequest()
	defer fasthttp.ReleaseRequest(req)
	req.SetRequestURI(url)
	for k, vs := range h {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp := fasthttp.AcquireResponse()
	if err := c.hc.DoTimeout(req, resp, c.timeout); err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	return resp, nil
}

// get requests url and reads the whole answer.
func get(ctx context.Context, c *client, url string, h http.Header) (code int, n int64, retryAfter bool, err error) {
	resp, err := c.do(ctx, url, h)
	if err != nil {
		return 0, 0, false, err
	}
	defer fasthttp.ReleaseResponse(resp)
	return resp.StatusCode(), int64(len(resp.Body())), len(resp.Header.Peek("Retry-After")) > 0, nil
}

// fetchETag fetches url once and returns its ETag.
func fetchETag(ctx context.Context, c *client, url string, h http.Header) (string, error) {
	resp, err := c.do(ctx, url, h)
	if err != nil {
		return "", fmt.Errorf("loadgen: fetching %s for its ETag: %w", url, err)
	}
	defer fasthttp.ReleaseResponse(resp)
	etag := string(resp.Header.Peek("ETag"))
	if resp.StatusCode() != http.StatusOK || etag == "" {
		return "", fmt.Errorf("%w: %s answered %d with ETag %q; a conditional load needs a 200 with an ETag", ErrConfig, url, resp.StatusCode(), etag)
	}
	return etag, nil
}
