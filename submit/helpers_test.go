package submit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fakeChecker answers from a function, counts the checks per domain and
// can hold every check until gate is closed.
type fakeChecker struct {
	mu     sync.Mutex
	calls  map[string]int
	gate   chan struct{} // nil: answer at once
	answer func(domain string) *validate.Result
}

func (f *fakeChecker) Check(ctx context.Context, domain string) (*validate.Result, error) {
	f.mu.Lock()
	f.calls[domain]++
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return f.answer(domain), nil
}

func (f *fakeChecker) count(domain string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[domain]
}

// passResult is an eligible domain with one MX host and one address.
func passResult(domain string) *validate.Result {
	mx := "mx." + domain
	return &validate.Result{
		Domain: domain, Eligible: true,
		MXs:      []validate.MXResult{{Host: mx, Preference: 10, Addresses: []validate.AddressResult{{IP: "192.0.2.10", OK: true, TLSVersion: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256", CertSubject: "CN=" + mx, CertIssuer: "CN=Lab CA", CertNotAfter: t0.Add(90 * 24 * time.Hour)}}}},
		Findings: []validate.Finding{{Code: "mta_sts.absent", Severity: validate.SeverityInfo, Summary: "no MTA-STS policy", Message: "publish one"}},
	}
}

// failResult is a domain whose MX offers an expired certificate.
func failResult(domain string) *validate.Result {
	r := passResult(domain)
	r.Eligible = false
	r.MXs[0].Addresses[0].OK = false
	r.Findings = append(r.Findings, validate.Finding{Code: "cert.expired", Severity: validate.SeverityError, Summary: "certificate expired", Message: "renew the <certificate>", Host: r.MXs[0].Host, IP: "192.0.2.10"})
	return r
}

// fakeArchive is a ListArchive in memory.
type fakeArchive struct {
	mu    sync.Mutex
	snaps map[int64]*publish.Snapshot
	cur   int64
	// serialsCalls counts the readings of the archive's serials.
	serialsCalls int
}

func (a *fakeArchive) Current(ctx context.Context) (*publish.Snapshot, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur == 0 {
		return nil, publish.ErrNotFound
	}
	return a.snaps[a.cur], nil
}

func (a *fakeArchive) BySerial(ctx context.Context, serial int64) (*publish.Snapshot, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.snaps[serial]; ok {
		return s, nil
	}
	return nil, publish.ErrNotFound
}

func (a *fakeArchive) Serials(ctx context.Context) ([]int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.serialsCalls++
	var out []int64
	for s := range a.snaps {
		out = append(out, s)
	}
	return out, nil
}

// publish adds a list of the given domains (name → mode).
func (a *fakeArchive) publish(t *testing.T, serial int64, at time.Time, modes map[string]string) {
	t.Helper()
	l := &listgen.List{Version: "1", Serial: serial, Timestamp: at, Expires: at.Add(7 * 24 * time.Hour), Author: "test",
		PolicyAliases: map[string]listgen.Policy{}, Policies: map[string]listgen.Policy{}}
	for d, m := range modes {
		l.Policies[d] = listgen.Policy{Mode: m, MXs: []string{"mx." + d}}
	}
	b, err := listgen.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.snaps == nil {
		a.snaps = map[int64]*publish.Snapshot{}
	}
	a.snaps[serial] = &publish.Snapshot{Serial: serial, List: b, Sig: []byte("sig"), Published: at}
	a.cur = serial
}

// testEnv is a door over a memory store with a fake checker, an injected
// clock and generous limits (tests of limits set their own).
type testEnv struct {
	t       *testing.T
	srv     *Server
	st      store.Store
	clock   *testclock.Clock
	checker *fakeChecker
	arch    *fakeArchive
}

type envOption func(*Config)

func newEnv(t *testing.T, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, st: memstore.New(), clock: testclock.New(t0), arch: &fakeArchive{}}
	e.checker = &fakeChecker{calls: map[string]int{}, answer: func(d string) *validate.Result {
		if strings.HasPrefix(d, "bad.") {
			return failResult(d)
		}
		return passResult(d)
	}}
	many := Limit{Every: time.Millisecond, Burst: 1000}
	c := Config{
		Store: e.st, Checker: e.checker, Lists: e.arch,
		Rules: admission.DefaultRules(), CheckInterval: 6 * time.Hour, ListValidity: 7 * 24 * time.Hour,
		Names:           listgen.NameOptions{AllowTestTLD: true},
		BaseURL:         "https://lists.example.org",
		KeyFingerprints: []string{"SHA256:testfingerprint"},
		Limits:          Limits{CheckPerIP: many, CheckPerDomain: many, SubmitPerIP: many, SubmitPerDomain: many, VerifyPerIP: many, VerifyPerDomain: many, MailPerDomain: many},
		Now:             e.clock.Now,
		CSRFKey:         []byte("test key"),
	}
	for _, o := range opts {
		o(&c)
	}
	srv, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	return e
}

// req is one request to the door.
type req struct {
	method, path string
	body         string
	ctype        string
	header       map[string]string
	remote       string
	cookies      []*http.Cookie
}

func (e *testEnv) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	method := r.method
	if method == "" {
		method = http.MethodGet
	}
	hr := httptest.NewRequest(method, r.path, body)
	if r.ctype != "" {
		hr.Header.Set("Content-Type", r.ctype)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.remote != "" {
		hr.RemoteAddr = r.remote
	}
	for _, c := range r.cookies {
		hr.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, hr)
	return rec
}

func (e *testEnv) get(path string) *httptest.ResponseRecorder { return e.do(req{path: path}) }

func (e *testEnv) postJSON(path, body string) *httptest.ResponseRecorder {
	return e.do(req{method: http.MethodPost, path: path, body: body, ctype: "application/json"})
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// form is a browser session: the CSRF cookie and token of a page.
type form struct {
	cookies []*http.Cookie
	token   string
}

// formFrom GETs a page that shows a form and keeps its cookie and token.
func (e *testEnv) formFrom(path string) form {
	e.t.Helper()
	rec := e.get(path)
	m := csrfRE.FindStringSubmatch(rec.Body.String())
	if m == nil {
		e.t.Fatalf("%s: no CSRF token in the page (%d): %s", path, rec.Code, rec.Body.String())
	}
	return form{cookies: rec.Result().Cookies(), token: m[1]}
}

func (e *testEnv) postForm(f form, path string, v url.Values) *httptest.ResponseRecorder {
	e.t.Helper()
	if f.token != "" {
		v.Set("csrf", f.token)
	}
	return e.do(req{method: http.MethodPost, path: path, body: v.Encode(), ctype: "application/x-www-form-urlencoded", cookies: f.cookies})
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("body is not the JSON expected: %v: %s", err, rec.Body.String())
	}
	return v
}

func mustPrefixes(ss ...string) []netip.Prefix {
	ps, err := ParseTrustedProxies(ss)
	if err != nil {
		panic(err)
	}
	return ps
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
