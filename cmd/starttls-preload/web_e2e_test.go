package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/browser"
	"github.com/starttls-preload/starttls-preload/internal/mailsink"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/listgen"
)

// TestWebEndToEnd drives the web pages of serve in a real Chromium, the way
// a domain's owner does, against the service on loopback with the lab's
// DNS server and MX hosts and an SMTP sink as notify.smtp_relay:
//
//  1. check mailed.test, submit it, receive the postmaster@ mail, open its
//     link (the GET proves nothing), confirm (POST): validating;
//  2. check and submit txtproof.test, publish the TXT record in the lab
//     DNS, press "Check the DNS record now": validating;
//  3. advance the injected clock through the admission period (rounds of
//     real checks): both testing, the progress bar full, both in the next
//     signed list, which verifies with the served key;
//  4. ask for the removal of mailed.test, confirm it from the second mail:
//     absent from the next list (published at the service's next look,
//     at most a minute later).
//
// Each page is saved as a screenshot (see internal/browser for where).
func TestWebEndToEnd(t *testing.T) {
	l := newCheckLab(t)
	l.dns.Add(
		"mailed.test. 300 IN MX 10 mx.good.test.",
		"txtproof.test. 300 IN MX 10 mx.good.test.",
	)
	sink := mailsink.New(t)
	serveEnv(t, l)
	t.Setenv("STARTTLS_PRELOAD_NOTIFY_SMTP_RELAY", sink.Addr())
	t.Setenv("STARTTLS_PRELOAD_NOTIFY_FROM", "preload@lab.test")
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()

	dataDir := t.TempDir()
	c := testServeConfig(t, dataDir, ln.Addr().String())
	clock := testclock.New(time.Now().Add(time.Minute).UTC())
	ctx := t.Context()
	app := testServeApp(ctx, t, c, schedulerDeps{now: clock.Now})
	if _, err := app.PublishStart(ctx); err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(app.Handler())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	mailCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	b := browser.New(t)

	// 1. Check, submit, prove by the mailed link.
	b.Navigate(base + "/")
	b.WaitVisible("#check-form")
	// The style sheet got past the Content-Security-Policy and applies.
	if !b.EvalBool(`[...document.styleSheets].some(s => s.href && s.href.startsWith(location.origin + "/static/") && s.cssRules.length > 0)`) {
		t.Error("the home page's style sheet did not load")
	}
	noScript(t, b)
	b.Screenshot("home")
	b.Fill("#domain", " Mailed.Test. ")
	if st := b.ClickNavigate("#check-submit"); st != http.StatusOK {
		t.Fatalf("check page: status %d", st)
	}
	b.WaitVisible("#verdict")
	if got := b.Attr("#verdict", "data-eligible"); got != "true" {
		t.Fatalf("mailed.test eligible = %q, want true", got)
	}
	if got := b.Text("#checked-domain"); got != "mailed.test" {
		t.Errorf("checked %q, want the normalised mailed.test", got)
	}
	if got := b.Attr("#mx-0", "data-host"); got != "mx.good.test" {
		t.Errorf("first MX host %q", got)
	}
	if got := b.Value("#mx-patterns"); strings.TrimSpace(got) != "mx.good.test" {
		t.Errorf("MX patterns pre-filled with %q", got)
	}
	noScript(t, b)
	b.Screenshot("check-mailed")
	b.Fill("#contact", "owner@mailed.test")
	if st := b.ClickNavigate("#submit-button"); st >= 400 {
		t.Fatalf("submit: status %d", st)
	}
	b.WaitVisible("#proof-purpose")
	if got := b.Attr("#proof-purpose", "data-purpose"); got != "add" {
		t.Errorf("proof purpose %q", got)
	}
	if got := b.Attr("#proof-mail", "data-sent"); got != "true" {
		t.Errorf("mail sent = %q", got)
	}
	if got := b.Text("#proof-dns-name"); got != "_starttls-preload.mailed.test" {
		t.Errorf("DNS proof name %q", got)
	}
	b.Screenshot("proof-mailed")
	if got := apiState(t, base, "mailed.test"); got != "pending" {
		t.Errorf("after submitting: %s, want pending", got)
	}

	link := mailedLink(t, sink, mailCtx, "postmaster@mailed.test", 0, base)
	b.Navigate(link)
	b.WaitVisible("#confirm-button")
	if got := b.Attr("#confirm-purpose", "data-purpose"); got != "add" {
		t.Errorf("confirm purpose %q", got)
	}
	b.Screenshot("confirm-mailed")
	// Opening the link proved nothing: the domain waits for the button.
	if got := apiState(t, base, "mailed.test"); got != "pending" {
		t.Errorf("after GET of the link: %s, want pending", got)
	}
	if st := b.ClickNavigate("#confirm-button"); st != http.StatusOK {
		t.Fatalf("confirm: status %d", st)
	}
	if got := b.Attr("#done", "data-state"); got != "validating" {
		t.Errorf("after confirming: %q, want validating", got)
	}
	b.Screenshot("confirmed-mailed")
	b.ClickNavigate("#status-link")
	if got := b.Attr("#state", "data-state"); got != "validating" {
		t.Errorf("status page says %q, want validating", got)
	}
	b.Screenshot("status-mailed-validating")

	// 2. Prove the second domain with a TXT record.
	b.Navigate(base + "/check?domain=txtproof.test")
	if got := b.Attr("#verdict", "data-eligible"); got != "true" {
		t.Fatalf("txtproof.test eligible = %q", got)
	}
	b.Fill("#contact", "owner@txtproof.test")
	b.Click("#mode-enforce")
	b.ClickNavigate("#submit-button")
	name, value := b.Text("#proof-dns-name"), b.Text("#proof-dns-value")
	if name != "_starttls-preload.txtproof.test" || value == "" {
		t.Fatalf("DNS proof %q %q", name, value)
	}
	b.Screenshot("proof-txt")
	l.dns.Add(name + `. 300 IN TXT "` + value + `"`)
	if st := b.ClickNavigate("#verify-button"); st != http.StatusOK {
		t.Fatalf("verify: status %d", st)
	}
	if got := b.Attr("#done", "data-state"); got != "validating" {
		t.Errorf("after the DNS proof: %q, want validating", got)
	}
	b.Screenshot("verified-txt")

	// 3. Rounds of checks through the admission period (1 day, 4 checks).
	var list *listgen.List
	for i := 0; i < 12; i++ {
		if err := app.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if list = servedList(t, base); listed(list, "mailed.test") && listed(list, "txtproof.test") {
			break
		}
		clock.Add(6 * time.Hour)
	}
	for _, d := range []string{"mailed.test", "txtproof.test"} {
		p, ok := list.Resolve(d)
		if !ok || p.Mode != listgen.ModeTesting || strings.Join(p.MXs, " ") != "mx.good.test" {
			t.Errorf("%s in the list: %+v %v", d, p, ok)
		}
	}
	b.Navigate(base + "/domains/mailed.test")
	if got := b.Attr("#state", "data-state"); got != "testing" {
		t.Errorf("status page says %q, want testing", got)
	}
	if v, m := b.Attr("#progress", "value"), b.Attr("#progress", "max"); v == "" || v != m {
		t.Errorf("progress bar %s of %s, want full", v, m)
	}
	if got := b.Attr("#listed", "data-serial"); got != strconv.FormatInt(list.Serial, 10) {
		t.Errorf("listed in serial %q, want %d", got, list.Serial)
	}
	if !b.Exists("#history-chart rect.mark.pass") {
		t.Error("no pass in the check history chart")
	}
	noScript(t, b)
	b.Screenshot("status-mailed-testing")
	b.Navigate(base + "/domains/txtproof.test")
	if got := b.Attr("#state", "data-state"); got != "testing" {
		t.Errorf("txtproof.test: %q, want testing", got)
	}
	b.Screenshot("status-txt-testing")
	b.Navigate(base + "/list?q=mailed")
	b.Screenshot("list")

	// 4. Removal, proven by the second mailed link.
	b.Navigate(base + "/domains/mailed.test")
	b.ClickNavigate("#removal-button")
	if got := b.Attr("#proof-purpose", "data-purpose"); got != "remove" {
		t.Fatalf("removal proof purpose %q", got)
	}
	b.Screenshot("proof-removal")
	b.Navigate(mailedLink(t, sink, mailCtx, "postmaster@mailed.test", 1, base))
	if got := b.Attr("#confirm-purpose", "data-purpose"); got != "remove" {
		t.Errorf("removal link's purpose %q", got)
	}
	b.Screenshot("confirm-removal")
	b.ClickNavigate("#confirm-button")
	if got := b.Attr("#done", "data-state"); got != "removal_requested" {
		t.Errorf("after confirming the removal: %q", got)
	}
	// The service looks at the list at least once a minute.
	clock.Add(time.Minute)
	if err := app.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	next := servedList(t, base)
	if next.Serial <= list.Serial || listed(next, "mailed.test") || !listed(next, "txtproof.test") {
		t.Errorf("list %d after the removal: mailed.test listed %v, txtproof.test %v", next.Serial, listed(next, "mailed.test"), listed(next, "txtproof.test"))
	}
	b.Navigate(base + "/domains/mailed.test")
	if got := b.Attr("#state", "data-state"); got != "removal_requested" && got != "removed" {
		t.Errorf("status after the removal: %q", got)
	}
	if b.Exists("#listed") {
		t.Error("the status page still shows mailed.test as listed")
	}
	b.Screenshot("status-mailed-removed")
}

// noScript fails the test if the page shown has a script: every page
// works without JavaScript.
func noScript(t *testing.T, b *browser.Page) {
	t.Helper()
	if !b.EvalBool(`document.scripts.length === 0 && document.querySelectorAll("[onclick],[onload],[onsubmit]").length === 0`) {
		t.Errorf("%s has a script", b.Location())
	}
}

// apiState is a domain's state from /api/v1/domains/<domain>.
func apiState(t *testing.T, base, domain string) string {
	t.Helper()
	var v struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(httpGet(t, base+"/api/v1/domains/"+domain), &v); err != nil {
		t.Fatal(err)
	}
	return v.State
}

var confirmLink = regexp.MustCompile(`https?://\S+/confirm\?token=\S+`)

// mailedLink waits for the skip-th mail to rcpt and returns the link in
// it, which must be on this instance.
func mailedLink(t *testing.T, sink *mailsink.Sink, ctx context.Context, rcpt string, skip int, base string) string {
	t.Helper()
	m, err := sink.Wait(ctx, rcpt, skip)
	if err != nil {
		t.Fatal(err)
	}
	link := confirmLink.FindString(m.Body())
	if !strings.HasPrefix(link, base+"/") {
		t.Fatalf("no link to %s in the mail:\n%s", base, m.Data)
	}
	return link
}

// servedList fetches the served list and verifies it with the served key.
func servedList(t *testing.T, base string) *listgen.List {
	t.Helper()
	body := httpGet(t, base+"/policy-list.json")
	pubs, err := listgen.ParsePublicKeys(httpGet(t, base+"/pubkey.pem"))
	if err != nil || len(pubs) == 0 {
		t.Fatalf("served keys: %v", err)
	}
	if err := listgen.VerifyBlob(pubs[0], body, httpGet(t, base+"/policy-list.json.sig")); err != nil {
		t.Fatalf("served list does not verify: %v", err)
	}
	l, err := listgen.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func listed(l *listgen.List, domain string) bool {
	_, ok := l.Resolve(domain)
	return ok
}
