package listgen

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testenv"
)

var renderNow = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func TestRenderGolden(t *testing.T) {
	l := sampleList(t)
	for _, tt := range []struct {
		name string
		o    RenderOptions
	}{
		{"sample", RenderOptions{Now: renderNow}},
		{"sample-early", RenderOptions{Now: renderNow, EarlyAdopter: true, CAFile: "/etc/ssl/lab ca.pem"}},
		{"sample-expired", RenderOptions{Now: l.Expires}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name+".postfix", RenderPostfix(l, tt.o))
			golden(t, tt.name+".exim", RenderExim(l, tt.o))
		})
	}
	pf, ex := EmptyPolicy("the list expired\nat noon")
	golden(t, "empty.postfix", pf)
	golden(t, "empty.exim", ex)
}

func TestRenderSkipsInvalid(t *testing.T) {
	l := sampleList(t)
	l.Policies["evil.example.com\nexample.org secure"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com"}}
	l.Policies["bad-mx.example.com"] = Policy{Mode: ModeEnforce, MXs: []string{"mx.example.com encrypt"}}
	l.Policies["no-alias.example.com"] = Policy{PolicyAlias: "missing"}
	for _, out := range [][]byte{RenderPostfix(l, RenderOptions{}), RenderExim(l, RenderOptions{})} {
		if bytes.Contains(out, []byte("evil")) || bytes.Contains(out, []byte("bad-mx")) || bytes.Contains(out, []byte("no-alias")) {
			t.Errorf("invalid entries rendered:\n%s", out)
		}
		if !bytes.Contains(out, []byte("Skipped 3 invalid entries")) {
			t.Errorf("no note of the skipped entries:\n%s", out)
		}
	}
}

// emptyMainCF is a Postfix config directory with an empty main.cf, so that
// postmap reads no system configuration.
func emptyMainCF(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.cf"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// postmap compiles and queries the rendered tables with the real Postfix.
func TestPostmapAcceptsRendered(t *testing.T) {
	postmap := testenv.LookPath(t, "postmap")
	cf := emptyMainCF(t)
	l := sampleList(t)
	for _, tt := range []struct {
		name  string
		table []byte
		want  map[string]string // key -> value; "" = not found
	}{
		{"enforce only", RenderPostfix(l, RenderOptions{}), map[string]string{
			"example.com":      "secure match=.mail.example.com:mx1.example.com",
			"example.net":      "secure match=.mx.hosting.example",
			"xn--bcher-kva.de": "secure match=mx.xn--bcher-kva.de",
			"example.org":      "",
		}},
		{"early adopter", RenderPostfix(l, RenderOptions{EarlyAdopter: true}), map[string]string{
			"example.org": "secure match=mx.example.org",
		}},
		{"empty", func() []byte { pf, _ := EmptyPolicy("test"); return pf }(), map[string]string{"example.com": ""}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "tls_policy")
			if err := os.WriteFile(file, tt.table, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(postmap, "-c", cf, "hash:"+file).CombinedOutput()
			if err != nil || len(out) != 0 {
				t.Fatalf("postmap: %v: %s", err, out)
			}
			for key, want := range tt.want {
				out, err := exec.Command(postmap, "-c", cf, "-q", key, "hash:"+file).CombinedOutput()
				got := strings.TrimSpace(string(out))
				if want == "" {
					if err == nil {
						t.Errorf("%s: found %q, want no entry", key, got)
					}
					continue
				}
				if err != nil || got != want {
					t.Errorf("%s: postmap -q = %q (%v), want %q", key, got, err, want)
				}
			}
		})
	}
}

// eximConfig writes a minimal Exim configuration whose remote transport
// includes EximTransportSnippet(policy).
func eximConfig(t *testing.T, exim, policy string) string {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "exim.conf")
	text := fmt.Sprintf(`exim_path = %s
primary_hostname = mta.lab.test
spool_directory = %s/spool
log_file_path = %s/%%slog
keep_environment =

begin routers
remote_mx:
  driver = dnslookup
  transport = remote_smtp

begin transports
remote_smtp:
  driver = smtp
%s
begin retry
* * F,2h,15m
`, exim, dir, dir, EximTransportSnippet(policy))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

func TestEximAcceptsSnippet(t *testing.T) {
	exim := testenv.Exim(t)
	policy := filepath.Join(t.TempDir(), "tls_policy")
	conf := eximConfig(t, exim, policy)
	out, err := exec.Command(exim, "-C", conf, "-bV").CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Configuration file is "+conf)) {
		t.Fatalf("exim -bV: %v\n%s", err, out)
	}
}

// The transport options, expanded by the real Exim (-be) for a given
// recipient domain and MX host, with the rendered file present or missing.
func TestEximSnippetExpansions(t *testing.T) {
	exim := testenv.Exim(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(dir, "tls_policy")
	l := sampleList(t)
	if err := os.WriteFile(policy, RenderExim(l, RenderOptions{CAFile: "/lab/ca.pem"}), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := eximConfig(t, exim, policy)
	options := map[string]string{}
	for line := range strings.Lines(EximTransportSnippet(policy)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if ok && !strings.HasPrefix(k, "#") {
			options[k] = v
		}
	}
	expand := func(t *testing.T, option, domain, host string) string {
		t.Helper()
		e := strings.NewReplacer("$domain", domain, "$host", host, "$event_name", "tcp:connect").Replace(options[option])
		// On standard input: exim limits the length of arguments.
		cmd := exec.Command(exim, "-C", conf, "-be")
		cmd.Stdin = strings.NewReader(e + "\n")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("exim -be %s: %v %s", e, err, out)
		}
		// Interactive -be prints a "> " prompt before each result.
		first, _, _ := strings.Cut(string(out), "\n")
		return strings.TrimSpace(strings.TrimPrefix(first, ">"))
	}
	tests := []struct {
		name, domain, host         string
		missing                    bool
		require, verify, ca, event string // event "" = connect, "x" = refuse
	}{
		{"enforced, exact mx", "example.com", "mx1.example.com", false, "*", "*", "/lab/ca.pem", ""},
		{"enforced, wildcard mx", "example.com", "a.mail.example.com", false, "*", "*", "/lab/ca.pem", ""},
		{"enforced, mx upper-case", "example.com", "A.Mail.Example.com", false, "*", "*", "/lab/ca.pem", ""},
		{"enforced, two labels under wildcard", "example.com", "a.b.mail.example.com", false, "*", "*", "/lab/ca.pem", "x"},
		{"enforced, wildcard base", "example.com", "mail.example.com", false, "*", "*", "/lab/ca.pem", "x"},
		{"enforced, foreign mx", "example.com", "mx.attacker.example", false, "*", "*", "/lab/ca.pem", "x"},
		{"alias", "example.net", "in1.mx.hosting.example", false, "*", "*", "/lab/ca.pem", ""},
		{"testing only", "example.org", "mx.example.org", false, "", "", "system", ""},
		{"not listed", "example.edu", "mx.example.edu", false, "", "", "system", ""},
		{"file missing", "example.edu", "mx.example.edu", true, "*", "*", "system", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.missing {
				hidden := policy + ".hidden"
				if err := os.Rename(policy, hidden); err != nil {
					t.Fatal(err)
				}
				defer os.Rename(hidden, policy)
			}
			if got := expand(t, "hosts_require_tls", tt.domain, tt.host); got != tt.require {
				t.Errorf("hosts_require_tls = %q, want %q", got, tt.require)
			}
			if got := expand(t, "tls_verify_hosts", tt.domain, tt.host); got != tt.verify {
				t.Errorf("tls_verify_hosts = %q, want %q", got, tt.verify)
			}
			if got := expand(t, "tls_verify_certificates", tt.domain, tt.host); got != tt.ca {
				t.Errorf("tls_verify_certificates = %q, want %q", got, tt.ca)
			}
			got := expand(t, "event_action", tt.domain, tt.host)
			if (got != "") != (tt.event != "") {
				t.Errorf("event_action at tcp:connect = %q, want refusal %v", got, tt.event != "")
			}
		})
	}
}

func TestRenderBothAndSizes(t *testing.T) {
	l := genList(2000)
	for _, o := range []RenderOptions{{}, {EarlyAdopter: true, CAFile: "/ca.pem"}} {
		pf, ex := Render(l, o)
		if !bytes.Equal(pf, RenderPostfix(l, o)) || !bytes.Equal(ex, RenderExim(l, o)) {
			t.Fatal("Render differs from RenderPostfix/RenderExim")
		}
		// The buffers were sized exactly (no growth): capacity minus the
		// header allowance is what the lines took.
		es, _ := entries(l)
		if n := linesSize(es, len(" secure match=\n"), o); cap(pf) != 4096+n || len(pf) > cap(pf) {
			t.Errorf("postfix: cap %d, len %d, lines %d", cap(pf), len(pf), n)
		}
	}
	b, err := Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	est := estimateSize(l.Author, sortedPolicies(l.Policies)) + estimateSize("", sortedPolicies(l.PolicyAliases))
	if est < len(b) || est > len(b)+len(b)/20 {
		t.Errorf("Marshal's size estimate %d, output %d", est, len(b))
	}
}

// A real Exim delivery (-odf) through a transport with the snippet: a
// domain whose MX host matches no pattern is deferred without a connection
// (the tcp:connect event refuses it); a matching host is connected to (here
// nothing listens: "Connection refused"). Traffic stays on 127.0.0.1.
func TestEximRefusesForeignMX(t *testing.T) {
	testenv.Root(t)
	exim := testenv.Exim(t)
	// Not t.TempDir: its parent is private, and Exim runs as its own user.
	dir, err := os.MkdirTemp("", "listgen-exim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, d), 0o777) // Exim drops to its own user
	}
	os.Chmod(dir, 0o755)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close() // nothing listens there now
	policy := filepath.Join(dir, "policy")
	// Written by hand: "localhost" (one label) is not a list name, but it
	// is the only name that resolves here without DNS.
	if err := os.WriteFile(policy, []byte("foreign.test: mode=enforce mxs=mx.foreign.test:*.foreign.test\nallowed.test: mode=enforce mxs=localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "exim.conf")
	text := fmt.Sprintf(`exim_path = %s
primary_hostname = mta.lab.test
qualify_domain = lab.test
spool_directory = %s/spool
log_file_path = %s/log/%%slog
keep_environment =

begin routers
to_localhost:
  driver = manualroute
  domains = *.test
  route_list = * localhost byname
  transport = remote_smtp
  self = send

begin transports
remote_smtp:
  driver = smtp
  port = %s
%s
begin retry
* * F,2h,15m
`, exim, dir, dir, port, EximTransportSnippet(policy))
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ domain, want string }{
		{"foreign.test", "Event requests alternate response"},
		{"allowed.test", "Connection refused"},
	} {
		os.RemoveAll(filepath.Join(dir, "spool", "db")) // no retry state between cases
		mainlog := filepath.Join(dir, "log", "mainlog")
		os.Remove(mainlog)
		cmd := exec.Command(exim, "-C", conf, "-odf", "-oi", "-f", "sender@lab.test", "user@"+tt.domain)
		cmd.Stdin = strings.NewReader("Subject: test\n\nbody\n")
		out, _ := cmd.CombinedOutput()
		log, _ := os.ReadFile(mainlog)
		if !bytes.Contains(log, []byte(tt.want)) || !bytes.Contains(log, []byte("== user@"+tt.domain)) {
			t.Errorf("%s: want a deferral with %q; mainlog:\n%s\n%s", tt.domain, tt.want, log, out)
		}
	}
}
