package submit

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/store"
)

// FuzzSubmission sends any body to the submissions API and any field
// values to the form. Whatever comes in: no 5xx; a refusal stores nothing
// and mails nothing; an acceptance stores a domain that ParseDomain
// accepts with a contact that is one plain address, and mails only
// postmaster@ that domain; no page carries the input unescaped.
func FuzzSubmission(f *testing.F) {
	f.Add(submitJSON("example.test"), "example.test", contact, "testing", "mx.example.test")
	f.Add(`{"domain":"xn--bcher-kva.test","contact":"a@b.test","mode":"enforce","mx_patterns":["*.mail.test"]}`, "Bücher.test.", "a@b.test", "enforce", "*.mail.test\nmx.b.test")
	f.Add(`{"domain":"<b>x</b>.test"}`, "<script>alert(1)</script>", "a@b.test\r\nBcc: c@d.test", "x", "")
	f.Add(`{"domain":1}`, "192.0.2.1", "", "", "mx..test")
	f.Add(`[]`, "co.uk", "\"quoted\"@b.test", "testing", strings.Repeat("m.test ", 30))
	f.Fuzz(func(t *testing.T, body, domain, contactIn, mode, patterns string) {
		mails := &mailRecorder{}
		e := newEnv(t, withLifecycle(&staticTXT{}, mails))
		rec := e.do(req{method: http.MethodPost, path: "/api/v1/submissions", body: body, ctype: "application/json"})
		checkOutcome(t, e, mails, rec.Code, "API")

		mails = &mailRecorder{}
		e = newEnv(t, withLifecycle(&staticTXT{}, mails))
		fm := e.formFrom("/check?domain=example.test")
		rec = e.postForm(fm, "/submit", url.Values{"domain": {domain}, "contact": {contactIn}, "mode": {mode}, "mx_patterns": {patterns}})
		checkOutcome(t, e, mails, rec.Code, "form")
		page := rec.Body.String()
		for _, in := range []string{domain, contactIn, mode, patterns} {
			if strings.ContainsAny(in, "<>") && len(in) > 3 && strings.Contains(page, in) {
				t.Errorf("the page carries %q unescaped", in)
			}
		}
	})
}

func checkOutcome(t *testing.T, e *testEnv, mails *mailRecorder, code int, door string) {
	t.Helper()
	if code >= 500 {
		t.Fatalf("%s: status %d", door, code)
	}
	ds, err := e.st.ListDomains(context.Background(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusAccepted {
		if d, p, dec := stored(t, e.st); d+p+dec != 0 || len(mails.all()) != 0 {
			t.Fatalf("%s: refused with %d but stored %d/%d/%d, mailed %d", door, code, d, p, dec, len(mails.all()))
		}
		return
	}
	if len(ds) != 1 {
		t.Fatalf("%s: accepted, %d domains stored", door, len(ds))
	}
	d := ds[0]
	if n, err := listgen.ParseDomain(d.Name, listgen.NameOptions{AllowTestTLD: true}); err != nil || n != d.Name {
		t.Errorf("%s: stored name %q: %v", door, d.Name, err)
	}
	if !validContact(d.Contact) || d.State != store.StatePending || len(d.MXPatterns) == 0 {
		t.Errorf("%s: stored %+v", door, d)
	}
	ms := mails.all()
	if len(ms) != 1 || ms[0].To != "postmaster@"+d.Name || ms[0].Check() != nil || strings.Contains(ms[0].Subject+ms[0].Body, d.Contact) {
		t.Errorf("%s: mails %+v", door, ms)
	}
}

// FuzzCheckDomain sends any domain to the check API and page: 200 only for
// a name ParseDomain accepts (and then the checker saw that name), 400
// otherwise, never anything else.
func FuzzCheckDomain(f *testing.F) {
	for _, s := range []string{"example.test", "EXAMPLE.test.", "192.0.2.1", "[::1]", "co.uk", "a..test", "xn--bcher-kva.test", "bücher.test", "a b.test", "<x>.test", strings.Repeat("a.", 130) + "test", "%00.test", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, domain string) {
		e := newEnv(t)
		for _, path := range []string{"/api/v1/check?domain=", "/check?domain="} {
			rec := e.get(path + url.QueryEscape(domain))
			want, err := listgen.ParseDomain(domain, listgen.NameOptions{AllowTestTLD: true})
			switch {
			case err == nil && rec.Code != http.StatusOK, err != nil && rec.Code != http.StatusBadRequest:
				t.Fatalf("%s%q: %d (ParseDomain: %q, %v)", path, domain, rec.Code, want, err)
			case err == nil && e.checker.count(want) != 1:
				t.Fatalf("%q: the checker did not check %q once", domain, want)
			}
			if strings.ContainsAny(domain, "<>") && len(domain) > 3 && strings.Contains(rec.Body.String(), domain) {
				t.Fatalf("%q appears unescaped", domain)
			}
		}
	})
}
