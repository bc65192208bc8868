package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/fakegithub"
	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/prcheck"
)

func prListBytes(t *testing.T, domains ...string) []byte {
	t.Helper()
	ts := time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)
	l := &listgen.List{Version: listgen.FormatVersion, Serial: 1, Timestamp: ts, Expires: ts.Add(7 * 24 * time.Hour),
		Author: "starttls-preload", Policies: map[string]listgen.Policy{}, PolicyAliases: map[string]listgen.Policy{}}
	for _, d := range domains {
		l.Policies[d] = listgen.Policy{Mode: listgen.ModeEnforce, MXs: []string{"mx.good.test"}}
	}
	b, err := listgen.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPRCheckCommand runs pr-check as GitHub Actions does: configured only
// by the GITHUB_* environment and the event file.
func TestPRCheckCommand(t *testing.T) {
	pki := lab.NewPKI(t)
	d := lab.NewDNS(t, "127.0.0.1:0")
	cert := pki.Leaf("mx.good.test")
	good := lab.NewMX(t, "127.0.0.2:0", lab.ModeGood, &cert)
	_, port, _ := net.SplitHostPort(good.Addr())
	gh := fakegithub.New(t, "example", "list", map[string][]byte{"policy-list.json": prListBytes(t, "listed.test")})
	d.Add("mx.good.test. 300 IN A 127.0.0.2", "new.test. 300 IN MX 10 mx.good.test.", "later.test. 300 IN MX 10 mx.good.test.",
		fmt.Sprintf("_starttls-preload.new.test. 300 IN TXT %q", gh.PRURL(7)))
	gh.OpenPR(7, "contributor/list", map[string][]byte{"policy-list.json": prListBytes(t, "listed.test", "new.test")})
	gh.OpenPR(8, "contributor/list", map[string][]byte{"policy-list.json": prListBytes(t, "listed.test", "later.test")})
	caFile := pki.WriteRootPEM(t)

	event := func(n int) string {
		p := filepath.Join(t.TempDir(), "event.json")
		os.WriteFile(p, []byte(fmt.Sprintf(`{"action":"synchronize","number":%d,"pull_request":{"number":%d},"repository":{"full_name":"example/list"}}`, n, n)), 0o600)
		return p
	}
	// In Actions the token is the installation's, which cannot read its
	// own user: the comment is github-actions[bot]'s, and another app's
	// comment that starts with the marker is not it.
	gh.BotLogin = "github-actions[bot]"
	t.Setenv("GITHUB_ACTIONS", "true")
	gh.AddComment(7, "other-app[bot]", true, prcheck.Marker+"\n### ✅ starttls-preload: ready\n")
	mine := func(n int) int {
		k := 0
		for _, c := range gh.Comments(n) {
			if c.User == gh.BotLogin && strings.HasPrefix(c.Body, prcheck.Marker) {
				k++
			}
		}
		return k
	}
	t.Setenv("GITHUB_API_URL", gh.APIURL())
	t.Setenv("GITHUB_REPOSITORY", "example/list")
	t.Setenv("GITHUB_TOKEN", "ghs_test")
	args := []string{"pr-check", "--resolver", d.Addr(), "--ca-file", caFile, "--allow-private", "--smtp-port", port, "--allow-test-tld", "--timeout", "10s"}

	t.Setenv("GITHUB_EVENT_PATH", event(7))
	out, errOut, code := execute(t, args...)
	if code != exitOK || !strings.Contains(out, "ready") {
		t.Fatalf("PR 7: exit %d, out %q, err %q", code, out, errOut)
	}
	t.Setenv("GITHUB_EVENT_PATH", event(8))
	out, errOut, code = execute(t, args...)
	if code != exitFindings || !strings.Contains(out, "not ready") {
		t.Fatalf("PR 8 (no proof): exit %d, out %q, err %q", code, out, errOut)
	}
	if mine(7) != 1 || mine(8) != 1 {
		t.Errorf("comments: %d on 7, %d on 8", mine(7), mine(8))
	}
	if c := gh.Comments(7)[0]; c.User != "other-app[bot]" || !strings.HasSuffix(c.Body, "ready\n") || strings.Contains(c.Body, "new.test") {
		t.Errorf("another app's comment was taken for the bot's: %+v", c)
	}
	// --pr outside Actions.
	t.Setenv("GITHUB_EVENT_PATH", "")
	if _, errOut, code := execute(t, append(args, "--pr", "7", "--repo", "example/list")...); code != exitOK {
		t.Fatalf("--pr 7: exit %d: %s", code, errOut)
	}
	if mine(7) != 1 {
		t.Errorf("re-run made a second comment")
	}

	// Usage errors.
	t.Setenv("GITHUB_REPOSITORY", "")
	if _, errOut, code := execute(t, append(args, "--pr", "7")...); code != exitUsage || !strings.Contains(errOut, "repository") {
		t.Errorf("no repository: exit %d: %s", code, errOut)
	}
	t.Setenv("GITHUB_REPOSITORY", "example/list")
	if _, errOut, code := execute(t, args...); code != exitUsage || !strings.Contains(errOut, "--pr") {
		t.Errorf("no PR: exit %d: %s", code, errOut)
	}
	t.Setenv("GITHUB_TOKEN", "")
	if _, errOut, code := execute(t, append(args, "--pr", "7")...); code != exitUsage || !strings.Contains(errOut, "token") {
		t.Errorf("no token: exit %d: %s", code, errOut)
	}
}
