package submit

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/notify"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

const contact = "hostmaster@example.test"

func submitJSON(domain string) string {
	return `{"domain":"` + domain + `","contact":"` + contact + `","mode":"enforce","mx_patterns":["mx.` + domain + `"]}`
}

// POST /api/v1/submissions answers 202 with the proof in the documented
// shape, stores the domain as pending, mails postmaster@ a link, and the
// contact appears in no answer.
func TestSubmitAPI(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	rec := e.postJSON("/api/v1/submissions", submitJSON("Example.TEST."))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	got := decode[map[string]any](t, rec)
	proof, _ := got["proof"].(map[string]any)
	dns, _ := proof["dns"].(map[string]any)
	mail, _ := proof["mail"].(map[string]any)
	if got["domain"] != "example.test" || got["state"] != "pending" || got["status_url"] != "https://lists.example.org/domains/example.test" ||
		dns["name"] != "_starttls-preload.example.test" || dns["type"] != "TXT" || !strings.HasPrefix(dns["value"].(string), lifecycle.DNSValuePrefix) ||
		mail["to"] != "postmaster@example.test" || mail["sent"] != true {
		t.Errorf("answer = %s", rec.Body.String())
	}
	if strings.Contains(rec.Body.String(), contact) {
		t.Errorf("the answer shows the contact")
	}
	d, err := e.st.GetDomain(context.Background(), "example.test")
	if err != nil || d.State != store.StatePending || d.Contact != contact || !d.WantEnforce || len(d.MXPatterns) != 1 || d.MXPatterns[0] != "mx.example.test" {
		t.Fatalf("stored %+v, %v", d, err)
	}
	ms := mails.all()
	if len(ms) != 1 || ms[0].To != "postmaster@example.test" || !strings.Contains(ms[0].Subject, "example.test") {
		t.Fatalf("mails = %+v", ms)
	}
	link := tokenLink(t, ms[0].Body)
	if strings.Contains(ms[0].Body, contact) {
		t.Errorf("the mail carries the visitor's contact")
	}
	// The token appears nowhere but in the mail.
	token := link[strings.Index(link, "token=")+len("token="):]
	for _, path := range []string{"/api/v1/domains/example.test", "/domains/example.test", "/api/v1/domains", "/api/v1/domains?name=example.test", "/list", "/stats"} {
		body := e.get(path).Body.String()
		if strings.Contains(body, contact) || strings.Contains(body, token) {
			t.Errorf("%s shows the contact or the token", path)
		}
	}
	if strings.Contains(rec.Body.String(), token) {
		t.Errorf("the API answer carries the token")
	}
}

// The HTML form does the same, after the check page offers it.
func TestSubmitForm(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	page := e.get("/check?domain=example.test").Body.String()
	for _, want := range []string{`id="submit-form"`, `id="contact"`, `id="mode-enforce"`, `>mx.example.test</textarea>`} {
		if !strings.Contains(page, want) {
			t.Fatalf("check page lacks %s", want)
		}
	}
	f := e.formFrom("/check?domain=example.test")
	rec := e.postForm(f, "/submit", url.Values{"domain": {"example.test"}, "contact": {contact}, "mode": {"testing"}, "mx_patterns": {"mx.example.test\r\n*.mail.example.test"}})
	body := rec.Body.String()
	if rec.Code != http.StatusAccepted || !strings.Contains(body, `id="proof-dns-value"`) || !strings.Contains(body, `data-sent="true"`) || !strings.Contains(body, `id="verify-form"`) {
		t.Fatalf("%d %s", rec.Code, body)
	}
	d, err := e.st.GetDomain(context.Background(), "example.test")
	if err != nil || d.State != store.StatePending || d.WantEnforce || len(d.MXPatterns) != 2 {
		t.Fatalf("stored %+v, %v", d, err)
	}
	// Once it is validating, the check page no longer offers the form.
	e.get(tokenLink(t, mails.all()[0].Body))
	f = e.formFrom(tokenLink(t, mails.all()[0].Body))
	e.postForm(f, "/domains/example.test/confirm", url.Values{"token": {tokenOf(mails.all()[0].Body)}})
	e.clock.Add(time.Hour)
	page = e.get("/check?domain=example.test").Body.String()
	if strings.Contains(page, `id="submit-form"`) || !strings.Contains(page, `id="state-note"`) {
		t.Errorf("a validating domain is offered for submission again")
	}
}

func tokenOf(body string) string {
	m := linkRE.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1][strings.Index(m[1], "token=")+len("token="):]
}

// The token rules, over HTTP: the GET of the link consumes nothing, the
// POST uses it once, an expired or superseded token proves nothing.
func TestTokenRules(t *testing.T) {
	submit := func(t *testing.T, e *testEnv, mails *mailRecorder) string {
		t.Helper()
		if rec := e.postJSON("/api/v1/submissions", submitJSON("example.test")); rec.Code != http.StatusAccepted {
			t.Fatalf("submit: %d %s", rec.Code, rec.Body.String())
		}
		ms := mails.all()
		return tokenOf(ms[len(ms)-1].Body)
	}
	state := func(t *testing.T, e *testEnv) store.State {
		t.Helper()
		d, err := e.st.GetDomain(context.Background(), "example.test")
		if err != nil {
			t.Fatal(err)
		}
		return d.State
	}
	confirmPath := "/domains/example.test/confirm"

	t.Run("GET does not consume", func(t *testing.T) {
		mails := &mailRecorder{}
		e := newEnv(t, withLifecycle(&staticTXT{}, mails))
		tok := submit(t, e, mails)
		for range 3 { // a mail scanner, a preview, the owner
			rec := e.get(confirmPath + "?token=" + tok)
			if rec.Code != 200 || !strings.Contains(rec.Body.String(), `id="confirm-button"`) || !strings.Contains(rec.Body.String(), `data-purpose="add"`) {
				t.Fatalf("GET: %d %s", rec.Code, rec.Body.String())
			}
		}
		for range 2 { // the JSON twin consumes nothing either
			rec := e.get("/api/v1/domains/example.test/confirm?token=" + tok)
			if rec.Code != 200 || decode[map[string]any](t, rec)["purpose"] != "add" {
				t.Fatalf("GET API: %d %s", rec.Code, rec.Body.String())
			}
		}
		if s := state(t, e); s != store.StatePending {
			t.Fatalf("after GETs: %s", s)
		}
		f := e.formFrom(confirmPath + "?token=" + tok)
		rec := e.postForm(f, confirmPath, url.Values{"token": {tok}})
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), `data-state="validating"`) {
			t.Fatalf("POST: %d %s", rec.Code, rec.Body.String())
		}
		if s := state(t, e); s != store.StateValidating {
			t.Fatalf("after POST: %s", s)
		}
	})
	t.Run("reused", func(t *testing.T) {
		mails := &mailRecorder{}
		e := newEnv(t, withLifecycle(&staticTXT{}, mails))
		tok := submit(t, e, mails)
		if rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+tok+`"}`); rec.Code != 200 {
			t.Fatalf("first use: %d %s", rec.Code, rec.Body.String())
		}
		rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+tok+`"}`)
		if rec.Code != http.StatusConflict || decode[apiError](t, rec).Code != "token_used" {
			t.Errorf("second use: %d %s", rec.Code, rec.Body.String())
		}
		if rec := e.get(confirmPath + "?token=" + tok); rec.Code != http.StatusConflict || strings.Contains(rec.Body.String(), "confirm-button") {
			t.Errorf("GET of a used link: %d", rec.Code)
		}
	})
	t.Run("expired", func(t *testing.T) {
		mails := &mailRecorder{}
		e := newEnv(t, withLifecycle(&staticTXT{}, mails))
		tok := submit(t, e, mails)
		e.clock.Add(lifecycle.DefaultTokenTTL + time.Second)
		if rec := e.get(confirmPath + "?token=" + tok); rec.Code != http.StatusGone {
			t.Errorf("GET: %d", rec.Code)
		}
		rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+tok+`"}`)
		if rec.Code != http.StatusGone || decode[apiError](t, rec).Code != "token_expired" {
			t.Errorf("POST: %d %s", rec.Code, rec.Body.String())
		}
		if s := state(t, e); s != store.StatePending {
			t.Errorf("state %s", s)
		}
	})
	t.Run("superseded", func(t *testing.T) {
		mails := &mailRecorder{}
		e := newEnv(t, withLifecycle(&staticTXT{}, mails))
		old := submit(t, e, mails)
		e.clock.Add(time.Minute)
		newer := submit(t, e, mails)
		rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+old+`"}`)
		if rec.Code != http.StatusGone || decode[apiError](t, rec).Code != "token_superseded" {
			t.Errorf("old token: %d %s", rec.Code, rec.Body.String())
		}
		if s := state(t, e); s != store.StatePending {
			t.Errorf("state %s", s)
		}
		if rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+newer+`"}`); rec.Code != 200 {
			t.Errorf("newer token: %d %s", rec.Code, rec.Body.String())
		}
	})
	t.Run("invalid or another domain's", func(t *testing.T) {
		mails := &mailRecorder{}
		e := newEnv(t, withLifecycle(&staticTXT{}, mails))
		tok := submit(t, e, mails)
		e.postJSON("/api/v1/submissions", submitJSON("other.test"))
		for _, c := range []struct{ domain, token string }{{"example.test", "aaaaaaaaaaaaaaaaaaaaaaaaaa"}, {"other.test", tok}, {"example.test", strings.Repeat("a", 500)}} {
			rec := e.postJSON("/api/v1/domains/"+c.domain+"/confirm", `{"token":"`+c.token+`"}`)
			if rec.Code != http.StatusForbidden || decode[apiError](t, rec).Code != "token_invalid" {
				t.Errorf("%s %.20s: %d %s", c.domain, c.token, rec.Code, rec.Body.String())
			}
		}
		if s := state(t, e); s != store.StatePending {
			t.Errorf("state %s", s)
		}
	})
}

// The DNS proof, looked up through the lab's DNS server, for admission
// and for removal; the verify endpoint checks whichever proof is pending.
func TestDNSProofWithLabDNS(t *testing.T) {
	d := lab.NewDNS(t, "127.0.0.1:0")
	v, err := validate.New(validate.Config{Resolver: d.Addr(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(v, mails))
	rec := e.postJSON("/api/v1/submissions", submitJSON("example.test"))
	p := decode[proofResponse](t, rec)
	// Nothing published yet: a mismatch, still pending.
	rec = e.postJSON("/api/v1/domains/example.test/verify", "")
	if rec.Code != http.StatusUnprocessableEntity || decode[apiError](t, rec).Code != "proof_mismatch" {
		t.Fatalf("before the record: %d %s", rec.Code, rec.Body.String())
	}
	d.Add(`_starttls-preload.example.test. 60 IN TXT "some-other-record"`, `_starttls-preload.example.test. 60 IN TXT "`+p.Proof.DNS.Value+`"`)
	// The page's button.
	f := e.formFrom("/domains/example.test")
	rec = e.postForm(f, "/domains/example.test/verify", url.Values{})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `data-state="validating"`) {
		t.Fatalf("verify page: %d %s", rec.Code, rec.Body.String())
	}
	rec = e.postJSON("/api/v1/domains/example.test/verify", "")
	if rec.Code != http.StatusConflict || decode[apiError](t, rec).Code != "no_pending_proof" {
		t.Errorf("verify again: %d %s", rec.Code, rec.Body.String())
	}

	// Removal: the same shape of proof, proven by DNS (the mail servers
	// may be gone).
	f = e.formFrom("/domains/example.test")
	rec = e.postForm(f, "/domains/example.test/removal", url.Values{})
	if rec.Code != http.StatusAccepted || !strings.Contains(rec.Body.String(), `data-purpose="remove"`) {
		t.Fatalf("removal page: %d %s", rec.Code, rec.Body.String())
	}
	e.clock.Add(time.Minute)
	rec = e.postJSON("/api/v1/domains/example.test/removal", "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("removal API: %d %s", rec.Code, rec.Body.String())
	}
	rp := decode[proofResponse](t, rec)
	if rp.State != "validating" || rp.Proof.DNS.Name != "_starttls-preload.example.test" || rp.Proof.DNS.Type != "TXT" || rp.Proof.Purpose != lifecycle.PurposeRemove || rp.Proof.Mail.To != "postmaster@example.test" {
		t.Errorf("removal proof = %+v", rp)
	}
	status := decode[statusView](t, e.get("/api/v1/domains/example.test"))
	if len(status.PendingProofs) != 1 || status.PendingProofs[0].DNS.Value != rp.Proof.DNS.Value {
		t.Errorf("pending proofs = %+v", status.PendingProofs)
	}
	d.Add(`_starttls-preload.example.test. 60 IN TXT "` + rp.Proof.DNS.Value + `"`)
	rec = e.postJSON("/api/v1/domains/example.test/verify", "")
	if rec.Code != 200 || decode[changeResponse](t, rec).State != "removal_requested" {
		t.Fatalf("removal verify: %d %s", rec.Code, rec.Body.String())
	}
	page := e.get("/domains/example.test").Body.String()
	if !strings.Contains(page, `data-state="removal_requested"`) || !strings.Contains(page, `id="removal-note"`) || !strings.Contains(page, "7 days") {
		t.Errorf("status page after removal: %s", page)
	}
}

// The mailed link through a real relay: notify's mailer sends to an SMTP
// sink on 127.0.0.1; the link's page has a button whose POST proves
// ownership. Nothing the visitor typed is in the mail's header.
func TestMailedLinkThroughSMTP(t *testing.T) {
	sink := newSMTPSink(t)
	m, err := notify.New(notify.Config{Relay: sink.addr, From: "STARTTLS preload <noreply@lists.example.org>", StartTLS: false, Hostname: "lists.example.org", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	e := newEnv(t, withLifecycle(&staticTXT{}, m))
	f := e.formFrom("/check?domain=example.test")
	rec := e.postForm(f, "/submit", url.Values{"domain": {"example.test"}, "contact": {contact}, "mode": {"testing"}, "mx_patterns": {"mx.example.test"}})
	if rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	msg := sink.next(t)
	if len(msg.to) != 1 || msg.to[0] != "postmaster@example.test" || msg.from != "noreply@lists.example.org" {
		t.Fatalf("envelope %s → %v", msg.from, msg.to)
	}
	head, body, _ := strings.Cut(strings.ReplaceAll(string(msg.data), "\r\n", "\n"), "\n\n")
	if strings.Contains(head, contact) || strings.Contains(body, contact) || !strings.Contains(head, "To: postmaster@example.test") {
		t.Errorf("header:\n%s", head)
	}
	link := tokenLink(t, body)
	page := e.get(link)
	if page.Code != 200 || !strings.Contains(page.Body.String(), `id="confirm-form"`) {
		t.Fatalf("link: %d %s", page.Code, page.Body.String())
	}
	f = e.formFrom(link)
	rec = e.postForm(f, "/domains/example.test/confirm", url.Values{"token": {tokenOf(body)}})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `data-state="validating"`) {
		t.Fatalf("confirm: %d %s", rec.Code, rec.Body.String())
	}
}

// The resend of the mail is limited per domain: a submission over the
// limit is refused before anything changes, so the link already mailed
// keeps working.
func TestMailResendLimited(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails), func(c *Config) { c.Limits.MailPerDomain = Limit{Every: 10 * time.Minute, Burst: 1} })
	if rec := e.postJSON("/api/v1/submissions", submitJSON("example.test")); rec.Code != http.StatusAccepted {
		t.Fatalf("%d", rec.Code)
	}
	_, proofs, _ := stored(t, e.st)
	rec := e.postJSON("/api/v1/submissions", submitJSON("example.test"))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "600" {
		t.Fatalf("resend: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
	if _, p, _ := stored(t, e.st); p != proofs || len(mails.all()) != 1 {
		t.Errorf("the refused resend stored a proof or sent a mail")
	}
	if rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+tokenOf(mails.all()[0].Body)+`"}`); rec.Code != 200 {
		t.Errorf("the first link: %d %s", rec.Code, rec.Body.String())
	}
	e.clock.Add(10 * time.Minute)
	if rec := e.postJSON("/api/v1/submissions", submitJSON("other.test")); rec.Code != http.StatusAccepted {
		t.Errorf("another domain: %d", rec.Code)
	}
}

// The mailed link's page lets postmaster@ withdraw a submission they did
// not make: the domain is removed, the token used; a removal token cannot
// withdraw.
func TestWithdraw(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	e.postJSON("/api/v1/submissions", submitJSON("example.test"))
	tok := tokenOf(mails.all()[0].Body)
	link := "/domains/example.test/confirm?token=" + tok
	if page := e.get(link).Body.String(); !strings.Contains(page, `id="withdraw-button"`) {
		t.Fatalf("no withdraw button: %s", page)
	}
	f := e.formFrom(link)
	rec := e.postForm(f, "/domains/example.test/withdraw", url.Values{"token": {tok}})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `data-state="removed"`) {
		t.Fatalf("withdraw: %d %s", rec.Code, rec.Body.String())
	}
	if rec := e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+tok+`"}`); rec.Code != http.StatusConflict {
		t.Errorf("the token after withdrawal: %d %s", rec.Code, rec.Body.String())
	}
	// A removal link offers no withdrawal and its token withdraws nothing.
	e.postJSON("/api/v1/submissions", submitJSON("other.test"))
	e.postJSON("/api/v1/domains/other.test/confirm", `{"token":"`+tokenOf(mails.all()[1].Body)+`"}`)
	e.postJSON("/api/v1/domains/other.test/removal", "")
	rtok := tokenOf(mails.all()[2].Body)
	if page := e.get("/domains/other.test/confirm?token=" + rtok).Body.String(); strings.Contains(page, "withdraw-button") || !strings.Contains(page, `data-purpose="remove"`) {
		t.Errorf("removal link page: %s", page)
	}
	if rec := e.postJSON("/api/v1/domains/other.test/withdraw", `{"token":"`+rtok+`"}`); rec.Code != http.StatusForbidden {
		t.Errorf("withdraw with a removal token: %d %s", rec.Code, rec.Body.String())
	}
	if d, _ := e.st.GetDomain(context.Background(), "other.test"); d.State != store.StateValidating {
		t.Errorf("other.test is %s", d.State)
	}
}

// The web door's checks keep the validator's private-address guard: an MX
// that resolves to loopback is reported, never contacted.
func TestWebCheckKeepsPrivateGuard(t *testing.T) {
	pki := lab.NewPKI(t)
	cert := pki.Leaf("mx.private.test")
	mx := lab.NewMX(t, "127.0.0.2:0", lab.ModeGood, &cert)
	_, port, _ := strings.Cut(mx.Addr(), ":")
	d := lab.NewDNS(t, "127.0.0.1:0")
	d.Add("private.test. 60 IN MX 10 mx.private.test.", "mx.private.test. 60 IN A 127.0.0.2")
	smtpPort, _ := strconv.Atoi(port)
	v, err := validate.New(validate.Config{Resolver: d.Addr(), Roots: pki.RootPool(), SMTPPort: smtpPort, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Checker = v })
	rec := e.get("/api/v1/check?domain=private.test")
	var res validate.Result
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if res.Eligible || !slices.Contains(res.Codes(), "mx.private_address") {
		t.Errorf("result %s", rec.Body.String())
	}
	if n := mx.Count(); n != 0 {
		t.Errorf("the private MX was contacted %d times", n)
	}
}

// A submission reuses the visitor's check of the domain; a domain already
// checked or listed is refused without a check.
func TestSubmitChecksOnce(t *testing.T) {
	mails := &mailRecorder{}
	e := newEnv(t, withLifecycle(&staticTXT{}, mails))
	e.get("/check?domain=example.test")
	if rec := e.postJSON("/api/v1/submissions", submitJSON("example.test")); rec.Code != http.StatusAccepted {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if n := e.checker.count("example.test"); n != 1 {
		t.Errorf("%d checks", n)
	}
	e.postJSON("/api/v1/domains/example.test/confirm", `{"token":"`+tokenOf(mails.all()[0].Body)+`"}`)
	e.clock.Add(time.Hour) // the cached result is stale
	rec := e.postJSON("/api/v1/submissions", submitJSON("example.test"))
	if rec.Code != http.StatusConflict || decode[apiError](t, rec).Code != "already_active" {
		t.Errorf("validating domain: %d %s", rec.Code, rec.Body.String())
	}
	if n := e.checker.count("example.test"); n != 1 || len(mails.all()) != 1 {
		t.Errorf("%d checks, %d mails", n, len(mails.all()))
	}
}
