package submit

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/validate"
)

// A flood of checks of one domain reaches its MX hosts once: every
// concurrent request waits for the one check in flight, and later ones
// get the cached result until it is stale.
func TestCheckFloodRunsOneCheck(t *testing.T) {
	e := newEnv(t)
	e.checker.gate = make(chan struct{})
	const n = 64
	var wg sync.WaitGroup
	codes := make([]int, n)
	bodies := make([]string, n)
	for i := range n {
		wg.Go(func() {
			path := "/api/v1/check?domain=flood.test"
			if i%2 == 1 {
				path = "/check?domain=FLOOD.test."
			}
			rec := e.do(req{path: path, remote: fmt.Sprintf("198.51.100.%d:1000", i)})
			codes[i], bodies[i] = rec.Code, rec.Body.String()
		})
	}
	close(e.checker.gate)
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, codes[i], bodies[i])
		}
	}
	if got := e.checker.count("flood.test"); got != 1 {
		t.Fatalf("%d concurrent requests ran %d checks, want 1", n, got)
	}
	// Still fresh a moment before the TTL; checked again after it.
	e.clock.Add(5*time.Minute - time.Second)
	e.get("/api/v1/check?domain=flood.test")
	if got := e.checker.count("flood.test"); got != 1 {
		t.Fatalf("within the TTL: %d checks", got)
	}
	e.clock.Add(time.Second)
	e.get("/api/v1/check?domain=flood.test")
	if got := e.checker.count("flood.test"); got != 2 {
		t.Fatalf("after the TTL: %d checks, want 2", got)
	}
}

// The JSON twin is the object `check --json` prints, byte for byte.
func TestCheckJSONIsTheCLIObject(t *testing.T) {
	e := newEnv(t)
	rec := e.get("/api/v1/check?domain=Bad.Example.TEST")
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	want, _ := json.Marshal(failResult("bad.example.test"))
	if got := strings.TrimSuffix(rec.Body.String(), "\n"); got != string(want) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	// Lists are [] and never null, even when the checker left them nil.
	e.checker.answer = func(d string) *validate.Result {
		return &validate.Result{Domain: d, MTASTS: &validate.MTASTSInfo{Mode: "none"}, MXs: []validate.MXResult{{Host: "mx." + d}}}
	}
	rec = e.get("/api/v1/check?domain=empty.test")
	if body := rec.Body.String(); strings.Contains(body, "null") || !strings.Contains(body, `"findings":[]`) ||
		!strings.Contains(body, `"addresses":[]`) || !strings.Contains(body, `"mx":[]`) {
		t.Errorf("nil lists: %s", body)
	}
}

// The check page groups the findings per MX host and address and shows
// each one's fix, escaped.
func TestCheckPageGroupsFindings(t *testing.T) {
	e := newEnv(t)
	e.checker.answer = func(d string) *validate.Result {
		r := failResult(d)
		r.Findings = append(r.Findings,
			validate.Finding{Code: "starttls.banner", Severity: validate.SeverityWarning, Summary: "slow banner", Message: "speed up", Host: "mx." + d},
			validate.Finding{Code: "dns.odd", Severity: validate.SeverityWarning, Summary: "odd", Message: "fix DNS", Host: "elsewhere.test"})
		return r
	}
	rec := e.get("/check?domain=bad.example.test")
	body := rec.Body.String()
	if rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, body)
	}
	mx := body[strings.Index(body, `id="mx-0"`):]
	addr := mx[strings.Index(mx, `class="address fail"`):]
	for _, want := range []string{`data-eligible="false"`, `data-host="mx.bad.example.test"`, `data-ip="192.0.2.10"`} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if !strings.Contains(addr, `data-code="cert.expired"`) || !strings.Contains(addr, "renew the &lt;certificate&gt;") {
		t.Errorf("the address's finding and escaped fix are not under the address: %s", addr)
	}
	if !strings.Contains(mx[:strings.Index(mx, `class="address`)], `data-code="starttls.banner"`) {
		t.Errorf("the host's finding is not under the host")
	}
	dom := body[strings.Index(body, `id="domain-findings"`):strings.Index(body, `id="mx-0"`)]
	if !strings.Contains(dom, `data-code="dns.odd"`) || !strings.Contains(dom, `data-code="mta_sts.absent"`) {
		t.Errorf("domain findings: %s", dom)
	}
	if strings.Contains(body, `id="submit-form"`) {
		t.Errorf("an ineligible domain is offered for submission")
	}
}

// Limits: one address flooding checks gets 429 with Retry-After, another
// address is unaffected; live checks of one domain are limited apart from
// cached answers.
func TestCheckRateLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Limits.CheckPerIP = Limit{Every: 10 * time.Second, Burst: 3}
		c.Limits.CheckPerDomain = Limit{Every: time.Minute, Burst: 1}
		c.CheckTTL = time.Second
	})
	flood := func(remote string, domain string) int {
		return e.do(req{path: "/api/v1/check?domain=" + domain, remote: remote}).Code
	}
	for i := range 3 {
		if c := flood("203.0.113.5:1", "a.test"); c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	rec := e.do(req{path: "/api/v1/check?domain=a.test", remote: "203.0.113.5:2"})
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "10" {
		t.Fatalf("4th request: %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if e := decode[apiError](t, rec); e.Code != "rate_limited" {
		t.Errorf("error = %+v", e)
	}
	if c := flood("203.0.113.6:1", "a.test"); c != 200 {
		t.Errorf("another client: %d", c)
	}
	// The result is stale; a live check of a.test again is over the
	// domain's limit, whoever asks.
	e.clock.Add(2 * time.Second)
	rec = e.do(req{path: "/check?domain=a.test", remote: "203.0.113.7:1"})
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Errorf("domain limit: %d %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if got := e.checker.count("a.test"); got != 1 {
		t.Errorf("%d checks of a.test, want 1", got)
	}
}

// X-Forwarded-For counts only from trusted proxies.
func TestClientIP(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.TrustedProxies = mustPrefixes("10.0.0.0/8", "2001:db8::/32")
	})
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:5", "", "192.0.2.1"},
		{"192.0.2.1:5", "198.51.100.7", "192.0.2.1"},                      // not a proxy: header ignored
		{"10.1.2.3:5", "198.51.100.7", "198.51.100.7"},                    // proxy
		{"10.1.2.3:5", "6.6.6.6, 198.51.100.7, 10.9.9.9", "198.51.100.7"}, // rightmost untrusted
		{"10.1.2.3:5", "garbage, 10.9.9.9", "10.9.9.9"},                   // stop at garbage
		{"[2001:db8::1]:5", "[::1]", "2001:db8::1"},                       // unparsable entry
		{"[::ffff:10.1.2.3]:5", "203.0.113.9", "203.0.113.9"},             // mapped proxy address
		{"10.1.2.3:5", "10.2.2.2", "10.2.2.2"},                            // only proxies: the leftmost
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := e.srv.clientIP(r).String(); got != tc.want {
			t.Errorf("%s via %q: %s, want %s", tc.xff, tc.remote, got, tc.want)
		}
	}
}

// Behind a trusted proxy each client has its own limit; a client that is
// no proxy cannot dodge its limit by inventing X-Forwarded-For.
func TestLimitsFollowTrustedClientIP(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.TrustedProxies = mustPrefixes("10.0.0.0/8")
		c.Limits.CheckPerIP = Limit{Every: time.Minute, Burst: 2}
	})
	get := func(remote, xff string) int {
		return e.do(req{path: "/api/v1/check?domain=a.test", remote: remote, header: map[string]string{"X-Forwarded-For": xff}}).Code
	}
	for i, want := range []int{200, 200, 429} {
		if c := get("10.0.0.1:1", "198.51.100.1"); c != want {
			t.Errorf("client A request %d: %d, want %d", i, c, want)
		}
	}
	if c := get("10.0.0.1:1", "198.51.100.2"); c != 200 {
		t.Errorf("client B behind the proxy: %d", c)
	}
	for i, want := range []int{200, 200, 429} {
		if c := get("192.0.2.9:1", fmt.Sprintf("203.0.113.%d", i)); c != want {
			t.Errorf("spoofing client request %d: %d, want %d", i, c, want)
		}
	}
}
