package submit

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// listedEnv is a door whose store holds a listed domain with checks and
// decisions, a pending one, and whose archive published two lists.
func listedEnv(t *testing.T) (*testEnv, *mailRecorder) {
	t.Helper()
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	ctx := context.Background()
	since := t0.Add(-10 * 24 * time.Hour)
	if err := e.st.AddDomain(ctx, store.Domain{Name: "listed.test", State: store.StateTesting, Contact: "secret-contact@listed.test",
		MXPatterns: []string{"mx.listed.test"}, PassingSince: &since, ChecksPassed: 40, NextCheck: t0}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		at := t0.Add(time.Duration(i-3) * time.Hour)
		r := passResult("listed.test")
		if i == 1 {
			r = failResult("listed.test")
		}
		f, _ := json.Marshal(r.Findings)
		if err := e.st.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "listed.test", At: at, Eligible: r.Eligible, MXHosts: []string{"mx.listed.test"}, Findings: f}, NextCheck: at.Add(time.Hour), ChecksPassed: 40, PassingSince: &since}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.Transition(ctx, "listed.test", store.StateTesting, store.StateEnforce, "promotion.enforce: passed <b>7 days</b>", t0.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	e.arch.publish(t, 1, t0.Add(-48*time.Hour), map[string]string{"listed.test": "testing"})
	e.arch.publish(t, 2, t0.Add(-time.Hour), map[string]string{"listed.test": "enforce", "other.test": "testing"})
	if rec := e.postJSON("/api/v1/submissions", submitJSON("pending.test")); rec.Code != http.StatusAccepted {
		t.Fatal(rec.Body.String())
	}
	return e, mails
}

// Every page and API route: status, content type, security headers, and
// for JSON the keys of the answer.
func TestHandlerTable(t *testing.T) {
	e, mails := listedEnv(t)
	tok := tokenOf(mails.all()[0].Body)
	type tc struct {
		name   string
		r      req
		status int
		json   bool
		keys   []string // JSON object keys that must be present
		has    []string // substrings of the body
		hasnt  []string
	}
	html, js := false, true
	cases := []tc{
		{"home", req{path: "/"}, 200, html, nil, []string{`id="check-form"`, `name="domain"`, "https://lists.example.org/policy-list.json", "SHA256:testfingerprint", "https://lists.example.org/pubkey.pem", "RandomizedDelaySec", "--jitter 30m"}, nil},
		{"home HEAD", req{method: "HEAD", path: "/"}, 200, html, nil, nil, nil},
		{"unknown page", req{path: "/nope"}, 404, false, nil, nil, nil},
		{"style sheet", req{path: "/static/style.css"}, 200, false, nil, []string{"font-family"}, nil},
		{"static listing", req{path: "/static/"}, 404, html, nil, nil, nil},
		{"check page", req{path: "/check?domain=new.test"}, 200, html, nil, []string{`data-eligible="true"`, `id="submit-form"`}, nil},
		{"check page, bad name", req{path: "/check?domain=192.0.2.1"}, 400, html, nil, []string{`id="name-error"`, `data-code="domain.ip_literal"`}, nil},
		{"check page, no name", req{path: "/check"}, 400, html, nil, []string{`id="name-error"`}, nil},
		{"check API", req{path: "/api/v1/check?domain=new.test"}, 200, js, []string{"domain", "eligible", "dnssec", "mxs", "findings", "checked_at"}, nil, nil},
		{"check API, bad name", req{path: "/api/v1/check?domain=co.uk"}, 400, js, []string{"error", "code"}, []string{"domain.public_suffix"}, nil},
		{"check API, POST", req{method: "POST", path: "/api/v1/check?domain=new.test"}, 405, js, []string{"error"}, nil, nil},
		{"status page", req{path: "/domains/listed.test"}, 200, html, nil, []string{`data-state="enforce"`, `id="history-chart"`, `class="mark pass"`, `class="mark fail"`, `data-serial="2"`, `id="progress"`, `max="28" value="28"`, "&lt;b&gt;7 days&lt;/b&gt;", `id="removal-form"`, `data-code="mta_sts.absent"`}, []string{"secret-contact"}},
		{"status page, pending", req{path: "/domains/pending.test"}, 200, html, nil, []string{`data-state="pending"`, `class="proof-dns-value"`, `id="verify-form"`, `value="0"`}, []string{contact, tok}},
		{"status page, unknown", req{path: "/domains/absent.test"}, 404, html, nil, []string{`id="error"`}, nil},
		{"status page, bad name", req{path: "/domains/co.uk"}, 400, html, nil, nil, nil},
		{"status API", req{path: "/api/v1/domains/LISTED.test"}, 200, js, []string{"domain", "state", "listed_as", "mx_patterns", "want_enforce", "follow_mta_sts", "checks_passed", "checks_needed", "passing_since", "failing_since", "last_checked", "next_check", "checks", "decisions", "state_text", "progress", "listed", "pending_proofs", "status_url"}, []string{`"serial":2`}, []string{"secret-contact"}},
		{"status API, unknown", req{path: "/api/v1/domains/absent.test"}, 404, js, []string{"error", "code"}, nil, nil},
		{"status API, %2F", req{path: "/api/v1/domains/%2F"}, 404, js, []string{"error"}, nil, nil},
		{"paged list API", req{path: "/api/v1/domains?limit=1"}, 200, js, nil, []string{`"domain": "listed.test"`}, []string{"pending.test", "secret-contact"}},
		{"batch API", req{path: "/api/v1/domains?name=listed.test&name=Absent.test&name=co.uk&name=pending.test"}, 200, js, []string{"domains", "not_found", "invalid"}, []string{`"absent.test"`, `"domain.public_suffix"`, `"domain":"pending.test"`}, []string{"secret-contact", contact}},
		{"batch API, too many", req{path: "/api/v1/domains?" + strings.Repeat("name=a.test&", 101)}, 400, js, []string{"error"}, nil, nil},
		{"unknown API path", req{path: "/api/v1/nope"}, 404, js, []string{"error"}, nil, nil},
		{"list page", req{path: "/list"}, 200, html, nil, []string{`data-serial="2"`, `data-domain="listed.test"`, `data-mode="enforce"`, `data-domain="other.test"`}, nil},
		{"list page, search", req{path: "/list?q=OTHER"}, 200, html, nil, []string{`data-domain="other.test"`}, []string{`data-domain="listed.test"`}},
		{"list API", req{path: "/api/v1/list?q=listed"}, 200, js, []string{"serial", "total", "entries"}, []string{`"mode":"enforce"`}, []string{"other.test"}},
		{"stats page", req{path: "/stats"}, 200, html, nil, []string{`id="stats-chart"`, `data-serial="1"`, `data-serial="2"`, `data-state="pending"`}, nil},
		{"stats API", req{path: "/api/v1/stats"}, 200, js, []string{"lists", "states"}, []string{`"enforce":1`}, nil},
		{"setup API", req{path: "/api/v1/setup"}, 200, js, []string{"list_url", "pubkey_url", "allowed_signers_url", "fingerprints", "fetch_yaml", "fetch_command", "cron", "systemd"}, nil, nil},
		{"confirm page", req{path: "/domains/pending.test/confirm?token=" + tok}, 200, html, nil, []string{`id="confirm-button"`, `name="token"`}, nil},
		{"confirm page, bad token", req{path: "/domains/pending.test/confirm?token=zzzz"}, 403, html, nil, []string{`id="error"`}, nil},
		{"confirm page, no token", req{path: "/domains/pending.test/confirm"}, 403, html, nil, nil, nil},
		{"submissions API, GET", req{path: "/api/v1/submissions"}, 404, js, nil, nil, nil},
		{"verify API, unknown", req{method: "POST", path: "/api/v1/domains/absent.test/verify"}, 409, js, []string{"error", "code"}, []string{"no_pending_proof"}, nil},
		{"removal API, unknown", req{method: "POST", path: "/api/v1/domains/absent.test/removal"}, 404, js, []string{"error", "code"}, nil, nil},
		{"removal API", req{method: "POST", path: "/api/v1/domains/listed.test/removal"}, 202, js, []string{"domain", "state", "status_url", "proof"}, []string{`"state":"enforce"`, `"type":"TXT"`, `"to":"postmaster@listed.test"`}, nil},
		{"withdraw API, bad token", req{method: "POST", path: "/api/v1/domains/pending.test/withdraw", body: `{"token":"zzzz"}`, ctype: "application/json"}, 403, js, []string{"error", "code"}, []string{"token_invalid"}, nil},
		{"withdraw page without CSRF", req{method: "POST", path: "/domains/pending.test/withdraw", body: "token=" + tok, ctype: "application/x-www-form-urlencoded"}, 403, html, nil, nil, nil},
		{"confirm API, wrong type", req{method: "POST", path: "/api/v1/domains/pending.test/confirm", body: `{"token":1}`, ctype: "application/json"}, 400, js, nil, nil, nil},
		{"submit page without form", req{method: "POST", path: "/submit"}, 415, html, nil, nil, nil},
		{"verify page without CSRF", req{method: "POST", path: "/domains/pending.test/verify", body: "x=1", ctype: "application/x-www-form-urlencoded"}, 403, html, nil, nil, nil},
		{"removal page without CSRF", req{method: "POST", path: "/domains/listed.test/removal", body: "x=1", ctype: "application/x-www-form-urlencoded"}, 403, html, nil, nil, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := e.do(c.r)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %.500s", rec.Code, c.status, rec.Body.String())
			}
			h := rec.Header()
			if c.r.path != "/nope" && c.name != "submissions API, GET" {
				csp := h.Get("Content-Security-Policy")
				if !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "default-src 'none'") {
					t.Errorf("CSP %q", csp)
				}
				if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" {
					t.Errorf("headers %v", h)
				}
			}
			ct := h.Get("Content-Type")
			switch {
			case c.json && !strings.HasPrefix(ct, "application/json"):
				t.Errorf("content type %q, want JSON", ct)
			case !c.json && c.r.path != "/static/style.css" && c.r.path != "/nope" && !strings.HasPrefix(ct, "text/html"):
				t.Errorf("content type %q, want HTML", ct)
			}
			body := rec.Body.String()
			if c.json && len(c.keys) > 0 {
				var m map[string]json.RawMessage
				if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
					t.Fatalf("not a JSON object: %v", err)
				}
				for _, k := range c.keys {
					if _, ok := m[k]; !ok {
						t.Errorf("no key %q in %s", k, body)
					}
				}
				for k, v := range m {
					if string(v) == "null" && !slices.Contains([]string{"passing_since", "failing_since", "last_checked", "listed"}, k) {
						t.Errorf("%s is null", k)
					}
				}
			}
			for _, s := range c.has {
				if !strings.Contains(body, s) {
					t.Errorf("body lacks %q: %.3000s", s, body)
				}
			}
			for _, s := range c.hasnt {
				if strings.Contains(body, s) {
					t.Errorf("body has %q", s)
				}
			}
			if !c.json && strings.HasPrefix(ct, "text/html") && (strings.Contains(body, "<script") || strings.Contains(body, "style=")) {
				t.Errorf("inline script or style in the page")
			}
		})
	}
}

// The status page's progress: passes of those needed and the earliest
// admission date for a validating domain.
func TestStatusProgress(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	since := t0.Add(-2 * 24 * time.Hour)
	if err := e.st.AddDomain(ctx, store.Domain{Name: "v.test", State: store.StateValidating, MXPatterns: []string{"mx.v.test"}, PassingSince: &since, ChecksPassed: 8, NextCheck: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	v := decode[statusView](t, e.get("/api/v1/domains/v.test"))
	// 20 more checks every 6 h from the next one end at t0+1h+19*6h,
	// before the streak is 7 days old (since+7d = t0+5d).
	want := since.Add(7 * 24 * time.Hour)
	if v.Progress.Passed != 8 || v.Progress.Needed != 28 || v.Progress.Earliest == nil || !v.Progress.Earliest.Equal(want) {
		t.Errorf("progress = %+v, want earliest %s", v.Progress, want)
	}
	// With 2 passes, the 26 checks left decide: t0+1h+25*6h.
	d, _ := e.st.GetDomain(ctx, "v.test")
	d.ChecksPassed = 2
	if err := e.st.UpdateDomain(ctx, d); err != nil {
		t.Fatal(err)
	}
	v = decode[statusView](t, e.get("/api/v1/domains/v.test"))
	if want := t0.Add(time.Hour + 25*6*time.Hour); v.Progress.Passed != 2 || !v.Progress.Earliest.Equal(want) {
		t.Errorf("progress = %+v, want earliest %s", v.Progress, want)
	}
	d.ChecksPassed = 8
	e.st.UpdateDomain(ctx, d)
	page := e.get("/domains/v.test").Body.String()
	if !strings.Contains(page, `max="28" value="8"`) || !strings.Contains(page, `id="earliest">`+want.Format("2006-01-02")) || !strings.Contains(page, `id="no-checks"`) {
		t.Errorf("page: %s", page)
	}
	if strings.Contains(page, `id="removal-form"`) {
		t.Errorf("removal offered without a lifecycle")
	}
}

// A stored name that ParseDomain refuses (an operator's lab domain, an
// old import) still has its status, in JSON and as a page; the door never
// adds such a name.
func TestStatusOfNameTheRulesRefuse(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Names.AllowTestTLD = false })
	if err := e.st.AddDomain(context.Background(), store.Domain{Name: "lab.test", State: store.StateValidating, MXPatterns: []string{"mx.lab.test"}, NextCheck: t0}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/domains/lab.test", "/domains/LAB.test.", "/api/v1/domains?name=lab.test"} {
		if rec := e.get(path); rec.Code != 200 || !strings.Contains(rec.Body.String(), "lab.test") {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
	if rec := e.get("/api/v1/domains/other.test"); rec.Code != 400 || decode[apiError](t, rec).Code != "domain.unknown_tld" {
		t.Errorf("unknown .test name: %d %s", rec.Code, rec.Body.String())
	}
	if rec := e.get("/api/v1/check?domain=lab.test"); rec.Code != 400 {
		t.Errorf("check of a refused name: %d", rec.Code)
	}
}

// The check history chart is built outside the template: whatever host
// names the checks recorded are escaped in it.
func TestHistoryChartEscapes(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.st.AddDomain(ctx, store.Domain{Name: "x.test", State: store.StateValidating, MXPatterns: []string{"mx.x.test"}, NextCheck: t0}); err != nil {
		t.Fatal(err)
	}
	f := mustJSON([]map[string]string{{"code": "cert.expired", "severity": "error", "summary": "s", "message": "m", "host": `"><script>x</script>`}})
	for i, ok := range []bool{true, false} {
		if err := e.st.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "x.test", At: t0.Add(time.Duration(i) * time.Hour), Eligible: ok,
			MXHosts: []string{`"><script>x</script>`, "mx.x.test"}, Findings: json.RawMessage(f)}, NextCheck: t0.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	page := e.get("/domains/x.test").Body.String()
	chart := page[strings.Index(page, `<svg id="history-chart"`):strings.Index(page, "</svg>")]
	if strings.Contains(page, "<script") || !strings.Contains(chart, `data-host="&#34;&gt;&lt;script&gt;x&lt;/script&gt;"`) {
		t.Errorf("chart: %s", chart)
	}
	// Three rows (the domain, two hosts) and a mark per check and row;
	// the failing check fails the domain and the host its error names.
	if n := strings.Count(chart, `<g class="row"`); n != 3 {
		t.Errorf("%d rows", n)
	}
	if p, f := strings.Count(chart, `class="mark pass"`), strings.Count(chart, `class="mark fail"`); p != 4 || f != 2 {
		t.Errorf("%d pass, %d fail marks, want 4 and 2", p, f)
	}
}

// TestPageTitles: the home page's title names the list once; other pages
// name themselves, then the list.
func TestPageTitles(t *testing.T) {
	e := newEnv(t)
	for path, want := range map[string]string{
		"/":     "<title>STARTTLS preload list</title>",
		"/list": " · STARTTLS preload list</title>",
	} {
		rec := e.get(path)
		if body := rec.Body.String(); !strings.Contains(body, want) {
			t.Errorf("%s: title is not %q:\n%.400s", path, want, body)
		}
	}
}
