package submit

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Hostile input: each case is refused with its status and code, and
// nothing is stored and no mail is sent. Each is sent to the JSON API and,
// where it has one, to the HTML form.
func TestHostileInput(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".test"
	ok := map[string]string{"domain": "example.test", "contact": contact, "mode": "testing", "mx_patterns": "mx.example.test"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		m[k] = v
		return m
	}
	type tc struct {
		name   string
		fields map[string]string // sent as JSON and as a form
		raw    string            // or this raw JSON body (API only)
		ctype  string            // API content type (default application/json)
		status int
		code   string // the API's error code
	}
	cases := []tc{
		{name: "IPv4 literal", fields: with("domain", "192.0.2.1"), status: 400, code: "domain.ip_literal"},
		{name: "IPv6 literal", fields: with("domain", "[2001:db8::1]"), status: 400, code: "domain.ip_literal"},
		{name: "public suffix", fields: with("domain", "co.uk"), status: 400, code: "domain.public_suffix"},
		{name: "private public suffix", fields: with("domain", "github.io"), status: 400, code: "domain.public_suffix"},
		{name: "unknown TLD", fields: with("domain", "example.notatld"), status: 400, code: "domain.unknown_tld"},
		{name: "too long", fields: with("domain", long), status: 400, code: "domain.too_long"},
		{name: "not a host name", fields: with("domain", "exa mple.test"), status: 400, code: "domain.invalid"},
		{name: "markup as a domain", fields: with("domain", "<script>alert(1)</script>.test"), status: 400, code: "domain.invalid"},
		{name: "one label", fields: with("domain", "localhost"), status: 400},
		{name: "empty domain", fields: with("domain", ""), status: 400, code: "domain.missing"},
		{name: "CR/LF in contact", fields: with("contact", "a@example.test\r\nBcc: victim@example.org"), status: 400, code: "contact.invalid"},
		{name: "LF in contact", fields: with("contact", "a@example.test\nSubject: hi"), status: 400, code: "contact.invalid"},
		{name: "display name in contact", fields: with("contact", "Eve <eve@example.test>"), status: 400, code: "contact.invalid"},
		{name: "two contacts", fields: with("contact", "a@example.test, b@example.test"), status: 400, code: "contact.invalid"},
		{name: "no contact", fields: with("contact", ""), status: 400, code: "contact.invalid"},
		{name: "unknown mode", fields: with("mode", "strict"), status: 400, code: "mode.invalid"},
		{name: "no MX pattern", fields: with("mx_patterns", ""), status: 400, code: "mx_patterns.missing"},
		{name: "bad MX pattern", fields: with("mx_patterns", "mx..example.test"), status: 400, code: "mx_patterns.invalid"},
		{name: "wildcard in the middle", fields: with("mx_patterns", "mx.*.example.test"), status: 400, code: "mx_patterns.invalid"},
		{name: "too many MX patterns", fields: with("mx_patterns", strings.TrimSpace(strings.Repeat("mx.example.test ", 21))), status: 400, code: "mx_patterns.too_many"},
		{name: "not eligible", fields: with("domain", "bad.example.test"), status: 422, code: "not_eligible"},
		{name: "patterns miss an MX host", fields: with("mx_patterns", "mx.other.test *.mail.example.test"), status: 400, code: "mx_patterns.mismatch"},
		{name: "oversized body", raw: `{"domain":"example.test","contact":"` + strings.Repeat("a", 20<<10) + `@example.test","mode":"testing","mx_patterns":["mx.example.test"]}`, status: 413, code: "body_too_large"},
		{name: "malformed JSON", raw: `{"domain":"example.test",`, status: 400, code: "json.invalid"},
		{name: "two objects", raw: submitJSON("example.test") + submitJSON("example.test"), status: 400, code: "json.invalid"},
		{name: "unknown field", raw: `{"domain":"example.test","contact":"` + contact + `","mode":"testing","mx_patterns":["mx.example.test"],"state":"enforce"}`, status: 400, code: "json.invalid"},
		{name: "wrong types", raw: `{"domain":["example.test"],"contact":1,"mode":"testing","mx_patterns":"mx.example.test"}`, status: 400, code: "json.invalid"},
		{name: "wrong content type", raw: submitJSON("example.test"), ctype: "text/plain", status: 415, code: "content_type"},
		{name: "form content type to the API", raw: submitJSON("example.test"), ctype: "application/x-www-form-urlencoded", status: 415, code: "content_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mails := &mailRecorder{}
			e := newEnv(t, withLifecycle(&staticTXT{}, mails))
			body := c.raw
			if c.fields != nil {
				pats := []string{}
				for _, p := range strings.Fields(c.fields["mx_patterns"]) {
					pats = append(pats, p)
				}
				body = mustJSON(map[string]any{"domain": c.fields["domain"], "contact": c.fields["contact"], "mode": c.fields["mode"], "mx_patterns": pats})
			}
			ctype := c.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			rec := e.do(req{method: http.MethodPost, path: "/api/v1/submissions", body: body, ctype: ctype})
			if rec.Code != c.status {
				t.Errorf("API: %d, want %d: %s", rec.Code, c.status, rec.Body.String())
			}
			if got := decode[apiError](t, rec); got.Error == "" || (c.code != "" && got.Code != c.code) {
				t.Errorf("API error = %+v, want code %q", got, c.code)
			}
			if c.fields != nil {
				f := e.formFrom("/check?domain=example.test")
				v := url.Values{}
				for k, x := range c.fields {
					v.Set(k, x)
				}
				rec := e.postForm(f, "/submit", v)
				if rec.Code != c.status {
					t.Errorf("form: %d, want %d", rec.Code, c.status)
				}
				page := rec.Body.String()
				if !strings.Contains(page, `id="error"`) || strings.Contains(page, "<script>") {
					t.Errorf("form page: %s", page)
				}
			}
			if d, p, dec := stored(t, e.st); d+p+dec != 0 {
				t.Errorf("stored %d domains, %d proofs, %d decisions", d, p, dec)
			}
			if n := len(mails.all()); n != 0 {
				t.Errorf("%d mails sent", n)
			}
		})
	}
}

// The forms' CSRF defences: a missing or foreign token and a cross-origin
// POST are refused, and nothing is stored.
func TestFormCSRF(t *testing.T) {
	fields := url.Values{"domain": {"example.test"}, "contact": {contact}, "mode": {"testing"}, "mx_patterns": {"mx.example.test"}}
	for _, c := range []struct {
		name string
		send func(e *testEnv) *http.Response
	}{
		{"missing token", func(e *testEnv) *http.Response {
			f := e.formFrom("/check?domain=example.test")
			f.token = ""
			return e.postForm(f, "/submit", cloneValues(fields)).Result()
		}},
		{"no cookie", func(e *testEnv) *http.Response {
			f := e.formFrom("/check?domain=example.test")
			f.cookies = nil
			return e.postForm(f, "/submit", cloneValues(fields)).Result()
		}},
		{"another visitor's token", func(e *testEnv) *http.Response {
			mine := e.formFrom("/check?domain=example.test")
			theirs := e.formFrom("/check?domain=example.test")
			mine.token = theirs.token
			return e.postForm(mine, "/submit", cloneValues(fields)).Result()
		}},
		{"cross-site POST", func(e *testEnv) *http.Response {
			f := e.formFrom("/check?domain=example.test")
			v := cloneValues(fields)
			v.Set("csrf", f.token)
			return e.do(req{method: http.MethodPost, path: "/submit", body: v.Encode(), ctype: "application/x-www-form-urlencoded", cookies: f.cookies,
				header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}}).Result()
		}},
		{"cross-origin API POST", func(e *testEnv) *http.Response {
			return e.do(req{method: http.MethodPost, path: "/api/v1/submissions", body: submitJSON("example.test"), ctype: "application/json",
				header: map[string]string{"Origin": "https://evil.example"}}).Result()
		}},
		{"multipart form", func(e *testEnv) *http.Response {
			f := e.formFrom("/check?domain=example.test")
			return e.do(req{method: http.MethodPost, path: "/submit", body: "--x--\r\n", ctype: "multipart/form-data; boundary=x", cookies: f.cookies}).Result()
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			mails := &mailRecorder{}
			e := newEnv(t, withLifecycle(&staticTXT{}, mails))
			resp := c.send(e)
			if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Errorf("status %d", resp.StatusCode)
			}
			if d, p, dec := stored(t, e.st); d+p+dec != 0 || len(mails.all()) != 0 {
				t.Errorf("stored %d domains, %d proofs, %d decisions, %d mails", d, p, dec, len(mails.all()))
			}
		})
	}
	// The same form with its token is accepted (the cases above fail for
	// their one defect).
	e := newEnv(t, withLifecycle(&staticTXT{}, &mailRecorder{}))
	f := e.formFrom("/check?domain=example.test")
	if rec := e.do(req{method: http.MethodPost, path: "/submit", body: withToken(fields, f.token).Encode(), ctype: "application/x-www-form-urlencoded", cookies: f.cookies,
		header: map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": "https://lists.example.org"}}); rec.Code != http.StatusAccepted {
		t.Errorf("the good form: %d %s", rec.Code, rec.Body.String())
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, x := range v {
		out[k] = append([]string(nil), x...)
	}
	return out
}

func withToken(v url.Values, tok string) url.Values {
	out := cloneValues(v)
	out.Set("csrf", tok)
	return out
}

// The domain in a path is normalised and refused like a typed one, on
// every route that changes something; nothing is stored.
func TestHostilePathNames(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	for _, name := range []string{"192.0.2.1", "co.uk", "example.notatld", "a_b.test", "%3Cb%3E.test", "x.test%0D%0ABcc:y"} {
		for _, r := range []req{
			{method: "POST", path: "/api/v1/domains/" + name + "/removal"},
			{method: "POST", path: "/api/v1/domains/" + name + "/verify"},
			{method: "POST", path: "/api/v1/domains/" + name + "/confirm", body: `{"token":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}`, ctype: "application/json"},
			{method: "POST", path: "/api/v1/domains/" + name + "/withdraw", body: `{"token":"aaaaaaaaaaaaaaaaaaaaaaaaaa"}`, ctype: "application/json"},
		} {
			rec := e.do(r)
			if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "<b>") {
				t.Errorf("%s %s: %d %s", r.method, r.path, rec.Code, rec.Body.String())
			}
		}
	}
	if d, p, dec := stored(t, e.st); d+p+dec != 0 || len(mails.all()) != 0 {
		t.Errorf("stored %d/%d/%d, %d mails", d, p, dec, len(mails.all()))
	}
}
