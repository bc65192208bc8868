package prdoor

import (
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/fakegithub"
	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/validate"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// env is a fake GitHub repository example/list, a lab DNS server and two
// MX hosts: mx.good.test passes, mx.bad.test has no STARTTLS.
type env struct {
	gh   *fakegithub.Server
	dns  *lab.DNS
	v    *validate.Validator
	door *Door
}

var t0 = time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, baseDomains ...string) *env {
	t.Helper()
	pki := lab.NewPKI(t)
	d := lab.NewDNS(t, "127.0.0.1:0")
	cert := pki.Leaf("mx.good.test", "*.mx.good.test")
	good := lab.NewMX(t, "127.0.0.2:0", lab.ModeGood, &cert)
	_, port, _ := net.SplitHostPort(good.Addr())
	lab.NewMX(t, "127.0.0.3:"+port, lab.ModeNoSTARTTLS, nil)
	d.Add("mx.good.test. 300 IN A 127.0.0.2", "mx.bad.test. 300 IN A 127.0.0.3")
	p, _ := strconv.Atoi(port)
	v, err := validate.New(validate.Config{Resolver: d.Addr(), Roots: pki.RootPool(), AllowPrivate: true, SMTPPort: p,
		Timeout: 10 * time.Second, GreetingTimeout: 10 * time.Second, HELOName: "checker.test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, dom := range baseDomains {
		d.Add(dom + ". 300 IN MX 10 mx.good.test.")
	}
	gh := fakegithub.New(t, "example", "list", map[string][]byte{
		"policy-list.json": listBytes(t, baseDomains...),
		"README.md":        []byte("# list\n"),
	})
	e := &env{gh: gh, dns: d, v: v}
	e.door = e.newDoor(t)
	return e
}

func (e *env) newDoor(t testing.TB) *Door {
	t.Helper()
	c, err := NewClient(e.gh.APIURL(), "", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &Door{GH: c, Owner: "example", Repo: "list", TXT: e.v,
		Checker: func() prcheck.Checker { return e.v.NewRound() },
		Options: prcheck.Options{AllowTestTLD: true}}
}

// domain puts a domain whose MX is mx.<host>.test in the lab's DNS, with a
// proof naming the pull request proofPR (0: none).
func (e *env) domain(name, host string, proofPR int) {
	e.dns.Add(fmt.Sprintf("%s. 300 IN MX 10 mx.%s.test.", name, host))
	if proofPR > 0 {
		e.dns.Add(fmt.Sprintf("_starttls-preload.%s. 300 IN TXT %q", name, e.gh.PRURL(proofPR)))
	}
}

// listBytes is a canonical list with one enforce policy per domain, MX
// pattern mx.good.test.
func listBytes(t testing.TB, domains ...string) []byte {
	t.Helper()
	l := &listgen.List{Version: listgen.FormatVersion, Serial: 1, Timestamp: t0, Expires: t0.Add(7 * 24 * time.Hour),
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

func listFile(t testing.TB, domains ...string) map[string][]byte {
	return map[string][]byte{"policy-list.json": listBytes(t, domains...)}
}

// golden compares a comment body, with the fake server's address replaced
// by a fixed one, with testdata/NAME.golden.
func (e *env) golden(t *testing.T, name, body string) {
	t.Helper()
	body = strings.ReplaceAll(body, e.gh.URL, "https://github.example")
	escaped := strings.NewReplacer(".", `\.`, ":", `\:`).Replace(e.gh.URL)
	body = strings.ReplaceAll(body, escaped, `https\://github\.example`)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if string(want) != body {
		t.Errorf("comment differs from %s (go test -update rewrites it):\n%s", path, body)
	}
}

// botComments returns the comments carrying the marker that the bot made.
func (e *env) botComments(n int) []fakegithub.Comment {
	var out []fakegithub.Comment
	for _, c := range e.gh.Comments(n) {
		if c.User == e.gh.BotLogin && strings.HasPrefix(c.Body, prcheck.Marker) {
			out = append(out, c)
		}
	}
	return out
}

// finalStatus returns the last status with our context on sha.
func (e *env) finalStatus(t *testing.T, sha string) fakegithub.Status {
	t.Helper()
	var last fakegithub.Status
	for _, s := range e.gh.Statuses(sha) {
		if s.Context != StatusContext {
			t.Errorf("status context %q", s.Context)
		}
		last = s
	}
	return last
}
