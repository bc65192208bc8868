//go:build linux

package publish

// End-to-end proof with real MTAs: real Postfix and real Exim, pointed at a
// DNS server run by the test, deliver to fake MX hosts on loopback under
// the policy that Fetch installed from a list served by NewHandler and
// signed with a key made in the test.
//
// Each MTA gets eight recipient domains at once: for each kind of MX
// (good certificate, self-signed, certificate for another name, no
// STARTTLS), "on-KIND.test" is in the list (enforce) and "off-KIND.test" is
// not. The MX of each domain is mx.DOMAIN on its own loopback address, port
// 25. The MTAs run in a private mount namespace (unshare -m) where
// /etc/resolv.conf names the test's DNS server.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testenv"
	"github.com/starttls-preload/starttls-preload/listgen"
)

// labNet is a random 127.X.Y.0/24 for one test: the DNS server listens on
// .53 port 53 and the fake MX hosts on .101 and up, port 25 (fixed ports:
// resolv.conf and MX records have none), so a random network keeps two
// runs of the tests on one machine apart. None of these is an interface
// address, so the MTAs do not take an MX for themselves.
func labNet() string {
	return fmt.Sprintf("127.%d.%d.", 1+rand.IntN(254), rand.IntN(256))
}

type mxKind struct {
	name   string
	mode   lab.Mode
	cert   func(p *lab.PKI, host string) *tls.Certificate
	onWant string // verdict with our policy: "sent" or "deferred"
}

var mxKinds = []mxKind{
	{"good", lab.ModeGood, func(p *lab.PKI, h string) *tls.Certificate { c := p.Leaf(h); return &c }, "sent"},
	{"selfsigned", lab.ModeGood, func(p *lab.PKI, h string) *tls.Certificate { c := p.SelfSigned(h); return &c }, "deferred"},
	{"wrongname", lab.ModeGood, func(p *lab.PKI, h string) *tls.Certificate { c := p.Leaf("wrong.example.net"); return &c }, "deferred"},
	{"nostarttls", lab.ModeNoSTARTTLS, func(*lab.PKI, string) *tls.Certificate { return nil }, "deferred"},
}

// mtaLab is what both MTA tests share.
type mtaLab struct {
	dir     string // world-readable: the MTAs' users read the CA and policy files
	caFile  string
	resolv  string
	mx      map[string]*lab.MX // by domain
	ts      *testServer
	expires time.Time
}

func newMTALab(t *testing.T) *mtaLab {
	t.Helper()
	testenv.Root(t)
	testenv.LookPath(t, "unshare")
	dir, err := os.MkdirTemp("", "starttls-preload-mta-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	l := &mtaLab{dir: dir, mx: map[string]*lab.MX{}, expires: time.Now().Add(24 * time.Hour)}
	pki := lab.NewPKI(t)
	l.caFile = l.write(t, "ca.pem", pki.RootPEM())
	subnet := labNet()
	l.resolv = l.write(t, "resolv.conf", []byte("nameserver "+subnet+"53\noptions timeout:2 attempts:2\n"))
	d := lab.NewDNS(t, subnet+"53:53")
	i := 0
	for _, pol := range []string{"on", "off"} {
		for _, k := range mxKinds {
			i++
			dom := pol + "-" + k.name + ".test"
			host, ip := "mx."+dom, fmt.Sprintf("%s%d", subnet, 100+i)
			d.Add(dom+". 60 IN MX 10 "+host+".", host+". 60 IN A "+ip)
			l.mx[dom] = lab.NewMX(t, ip+":25", k.mode, k.cert(pki, host))
		}
	}
	// Replies for the bounce domain, so that nothing waits for a timeout.
	d.Add("lab.test. 60 IN A 127.0.0.1")
	l.ts = newTestServer(t, newKey(t))
	l.ts.add(t, l.list(1))
	return l
}

// list enforces every on-KIND.test domain.
func (l *mtaLab) list(serial int64) *listgen.List {
	lst := &listgen.List{
		Version:       listgen.FormatVersion,
		Serial:        serial,
		Timestamp:     time.Now().Add(-time.Minute).UTC().Truncate(time.Second),
		Expires:       l.expires.UTC().Truncate(time.Second),
		Author:        "starttls-preload end-to-end test",
		PolicyAliases: map[string]listgen.Policy{},
		Policies:      map[string]listgen.Policy{},
	}
	for _, k := range mxKinds {
		dom := "on-" + k.name + ".test"
		lst.Policies[dom] = listgen.Policy{Mode: listgen.ModeEnforce, MXs: []string{"mx." + dom}}
	}
	return lst
}

func (l *mtaLab) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(l.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// inNS runs a command with the lab's resolv.conf over /etc/resolv.conf,
// in a private mount namespace (daemons it starts stay there).
func (l *mtaLab) inNS(args ...string) *exec.Cmd {
	a := append([]string{"-m", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, l.resolv}, args...)
	return exec.Command("unshare", a...)
}

// received reports whether the MX of domain got the message tagged tag.
func (l *mtaLab) received(domain, tag string) bool {
	for _, m := range l.mx[domain].Messages() {
		if bytes.Contains(m.Data, []byte(tag)) {
			return true
		}
	}
	return false
}

func message(tag, domain string) string {
	return "Message-ID: <" + tag + "@lab.test>\nFrom: sender@lab.test\nTo: user@" + domain + "\nSubject: " + tag + "\n\nbody " + tag + "\n"
}

func run(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	return string(out)
}

// poll calls f until it reports done or the deadline passes: only to wait
// for the MTAs, which run on their own.
func poll(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// verdict is one delivery attempt read from an MTA's log.
type verdict struct{ status, detail string }

// policyDeferral tells a deferral caused by the TLS policy from others
// (a suspended destination, DNS trouble).
var policyDeferral = regexp.MustCompile(`(?i)certificate|TLS is required|TLS session|tls_verify|STARTTLS|TLS`)

// check asserts the verdict of one case and what the MX received.
func (l *mtaLab) check(t *testing.T, mta, domain, tag, want string, v verdict) {
	t.Helper()
	got := l.received(domain, tag)
	switch {
	case v.status != want:
		t.Errorf("%s %s: %s (%s), want %s", mta, domain, v.status, v.detail, want)
	case want == "sent" && !got:
		t.Errorf("%s %s: logged as sent but the MX has no such message", mta, domain)
	case want == "deferred" && got:
		t.Errorf("%s %s: deferred, but the MX received the message", mta, domain)
	case want == "deferred" && !policyDeferral.MatchString(v.detail):
		t.Errorf("%s %s: deferred for another reason: %s", mta, domain, v.detail)
	default:
		t.Logf("%s %-22s %-8s %s", mta, domain, v.status, v.detail)
	}
}

// mtaDriver is what the scenario needs from an MTA.
type mtaDriver interface {
	// deliver submits one message per domain and returns each verdict;
	// until(v) says whether a verdict is final for the scenario.
	deliver(t *testing.T, tags map[string]string, until func(domain string, v verdict) bool) map[string]verdict
	// forget clears retry and queue state between phases.
	forget(t *testing.T)
	// verified reports whether the MTA logged a verified TLS session to
	// the MX of domain.
	verified(t *testing.T, domain string, v verdict) bool
	// queued reports whether a message to domain waits in the MTA's queue.
	queued(t *testing.T, domain string) bool
}

// scenario runs the matrix and the expiry and tampering steps against one MTA.
func (l *mtaLab) scenario(t *testing.T, name string, m mtaDriver, fo FetchOptions) {
	ctx := context.Background()
	tags := func(phase string, domains ...string) map[string]string {
		m := map[string]string{}
		for _, d := range domains {
			m[d] = fmt.Sprintf("%s-%s-%s-%d", name, phase, d, time.Now().UnixNano())
		}
		return m
	}
	final := func(string, verdict) bool { return true }
	start := time.Now()
	phase := func(what string) {
		t.Logf("%s: %s done after %v", name, what, time.Since(start).Round(time.Millisecond))
	}

	// 1. The matrix: our policy for on-*, none for off-*.
	res, err := Fetch(ctx, fo)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if !res.Changed || res.Serial != 1 {
		t.Fatalf("fetch: %+v", res)
	}
	var all []string
	for _, k := range mxKinds {
		all = append(all, "on-"+k.name+".test", "off-"+k.name+".test")
	}
	tg := tags("matrix", all...)
	vs := m.deliver(t, tg, final)
	for _, k := range mxKinds {
		on, off := "on-"+k.name+".test", "off-"+k.name+".test"
		l.check(t, name, on, tg[on], k.onWant, vs[on])
		l.check(t, name, off, tg[off], "sent", vs[off])
	}
	if !m.verified(t, "on-good.test", vs["on-good.test"]) {
		t.Errorf("%s: no verified TLS session logged for on-good.test", name)
	}
	for _, k := range mxKinds {
		on := "on-" + k.name + ".test"
		if q := m.queued(t, on); q != (k.onWant == "deferred") {
			t.Errorf("%s: message to %s in the queue: %t, want %t", name, on, q, !q)
		}
	}
	m.forget(t)
	phase("matrix")

	// 2. A tampered list is refused; the policy in place still defers the
	// downgrade.
	good := fo.URL
	tampered := l.ts.add(t, l.list(2))
	flipped := bytes.Replace(tampered.List, []byte("on-nostarttls"), []byte("on-nostarttlz"), 1)
	fo.URL = badServer(t, bytesHandler(flipped), bytesHandler(tampered.Sig))
	before := map[string][]byte{}
	for _, p := range installedFiles(fo) {
		before[p], _ = os.ReadFile(p)
	}
	if _, err := Fetch(ctx, fo); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("fetch of a tampered list: %v, want ErrBadSignature", err)
	}
	for p, b := range before {
		if now, _ := os.ReadFile(p); !bytes.Equal(now, b) {
			t.Errorf("%s changed after a refused list", p)
		}
	}
	fo.URL = good
	d := "on-nostarttls.test"
	tg = tags("tampered", d)
	vs = m.deliver(t, tg, func(_ string, v verdict) bool { return !strings.Contains(v.detail, "suspended") })
	l.check(t, name, d, tg[d], "deferred", vs[d])
	m.forget(t)
	phase("tampered list")

	// 3. The list expires: fetch withdraws enforcement (and says so), and
	// the self-signed MX gets mail again. Serial 2 (the real one) is
	// served now, with the same expiry: the client is past it.
	fo.Now = func() time.Time { return l.expires.Add(time.Minute) }
	res, err = Fetch(ctx, fo)
	if !errors.Is(err, ErrExpired) || res == nil || !res.Withdrawn || !res.Changed {
		t.Fatalf("fetch after expiry: %+v, %v; want enforcement withdrawn", res, err)
	}
	d = "on-selfsigned.test"
	tg = tags("expired", d)
	vs = m.deliver(t, tg, func(_ string, v verdict) bool { return v.status == "sent" })
	l.check(t, name, d, tg[d], "sent", vs[d])
	m.forget(t)
	phase("expiry")

	// 4. A newer valid list restores enforcement.
	l.expires = time.Now().Add(48 * time.Hour)
	fo.Now = nil
	l.ts.add(t, l.list(3))
	if res, err = Fetch(ctx, fo); err != nil || res.Withdrawn || res.Serial != 3 {
		t.Fatalf("fetch of a new list: %+v, %v", res, err)
	}
	tg = tags("restored", d)
	vs = m.deliver(t, tg, func(_ string, v verdict) bool { return !strings.Contains(v.detail, "suspended") })
	l.check(t, name, d, tg[d], "deferred", vs[d])
	phase("restore")
}

func installedFiles(o FetchOptions) []string {
	var ps []string
	if o.PostfixMap != "" {
		ps = append(ps, o.PostfixMap)
		if o.Postmap != "" {
			ps = append(ps, o.PostfixMap+postmapSuffix[o.Postmap])
		}
	}
	if o.EximFile != "" {
		ps = append(ps, o.EximFile)
	}
	return ps
}

// ---- Postfix ----

type postfixMTA struct {
	l   *mtaLab
	etc string
	log string
}

func TestPostfixEnforcesFetchedPolicy(t *testing.T) {
	postfix := testenv.LookPath(t, "postfix")
	testenv.LookPath(t, "postmap")
	t0 := time.Now()
	l := newMTALab(t)
	p := &postfixMTA{l: l, etc: filepath.Join(l.dir, "postfix", "etc"), log: filepath.Join(l.dir, "postfix", "postfix.log")}
	spool, data := filepath.Join(l.dir, "postfix", "spool"), filepath.Join(l.dir, "postfix", "data")
	for _, d := range []string{p.etc, spool, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, exec.Command("chown", "postfix:postfix", data))
	master, err := os.ReadFile("/etc/postfix/master.cf")
	if err != nil {
		t.Fatalf("postfix's master.cf: %v", err)
	}
	l.write(t, "postfix/etc/master.cf", master)
	mapPath := filepath.Join(l.dir, "postfix", "etc", "starttls-policy")
	mainCF := `compatibility_level = 3.6
config_directory = ` + p.etc + `
queue_directory = ` + spool + `
data_directory = ` + data + `
maillog_file = ` + p.log + `
maillog_file_prefixes = /var, /dev/stdout, ` + l.dir + `
myhostname = mta.lab.test
mydomain = lab.test
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
transport_maps = inline:{ lab.test=discard: , mta.lab.test=discard: }
smtp_tls_loglevel = 1
smtp_connection_cache_on_demand = no
# every delivery in a fresh smtp(8) process, which reads the current map
max_use = 1
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
` + listgen.PostfixMainCF("hash:"+mapPath, l.caFile)
	l.write(t, "postfix/etc/main.cf", []byte(mainCF))
	run(t, exec.Command("postconf", "-c", p.etc, "-F", "*/*/chroot=n"))
	run(t, exec.Command("postconf", "-c", p.etc, "-MX", "smtp/inet"))
	// The map must exist before Postfix starts (a missing one defers all mail).
	l.write(t, "postfix/etc/starttls-policy", nil)
	// Postfix waits until a configuration file is a second old before it
	// reads it (so that it never reads one being written): age them.
	backdate(t, filepath.Join(p.etc, "main.cf"), filepath.Join(p.etc, "master.cf"))
	run(t, exec.Command("postmap", "-c", p.etc, "hash:"+mapPath))

	t.Cleanup(func() { p.stop(t) })
	if out, err := l.inNS(postfix, "-c", p.etc, "start").CombinedOutput(); err != nil {
		log, _ := os.ReadFile(p.log)
		t.Fatalf("postfix start: %v\n%s\n%s", err, out, log)
	}
	poll(t, "the postfix master", p.running)
	t.Logf("postfix: started after %v", time.Since(t0).Round(time.Millisecond))

	fo := FetchOptions{
		URL:            l.ts.url(),
		PublicKeys:     []crypto.PublicKey{l.ts.key.Public()},
		StateDir:       filepath.Join(l.dir, "postfix", "fetch-state"),
		PostfixMap:     mapPath,
		Postmap:        "hash",
		PostmapCommand: []string{"postmap", "-c", p.etc},
		Reload:         "postfix -c " + p.etc + " reload",
	}
	l.scenario(t, "postfix", p, fo)
}

// running reports whether the master holds its lock ("master -t" exits 0
// when it could take it).
func (p *postfixMTA) running() bool {
	return exec.Command("/usr/lib/postfix/sbin/master", "-c", p.etc, "-t").Run() != nil
}

func (p *postfixMTA) stop(t *testing.T) {
	if !p.running() {
		return
	}
	if exec.Command("postfix", "-c", p.etc, "stop").Run() != nil {
		// Last resort: the master's pid file.
		if b, err := os.ReadFile(filepath.Join(p.etc, "..", "spool", "pid", "master.pid")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
	poll(t, "postfix to stop", func() bool { return !p.running() })
}

var (
	pfQueueID = regexp.MustCompile(`\b([0-9A-F]{6,}): message-id=<([^@>]+)@lab\.test>`)
	pfStatus  = regexp.MustCompile(`\b([0-9A-F]{6,}): to=<user@([^>]+)>.* status=([a-z]+) \((.*)\)$`)
)

func (p *postfixMTA) deliver(t *testing.T, tags map[string]string, until func(string, verdict) bool) map[string]verdict {
	t.Helper()
	for d, tag := range tags {
		cmd := exec.Command("sendmail", "-C", p.etc, "-oi", "-f", "sender@lab.test", "user@"+d)
		cmd.Stdin = strings.NewReader(message(tag, d))
		run(t, cmd)
	}
	out := map[string]verdict{}
	poll(t, "postfix's verdicts", func() bool {
		log, _ := os.ReadFile(p.log)
		qid := map[string]string{} // queue id -> domain
		for _, m := range pfQueueID.FindAllStringSubmatch(string(log), -1) {
			for d, tag := range tags {
				if m[2] == tag {
					qid[m[1]] = d
				}
			}
		}
		for line := range strings.Lines(string(log)) {
			m := pfStatus.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil || qid[m[1]] != m[2] {
				continue
			}
			if _, done := out[m[2]]; done {
				continue
			}
			if v := (verdict{m[3], m[4]}); until(m[2], v) {
				out[m[2]] = v
			}
		}
		return len(out) == len(tags)
	})
	return out
}

func (p *postfixMTA) verified(t *testing.T, domain string, _ verdict) bool {
	log, _ := os.ReadFile(p.log)
	return bytes.Contains(log, []byte("Verified TLS connection established to mx."+domain+"["))
}

func (p *postfixMTA) queued(t *testing.T, domain string) bool {
	out, _ := exec.Command("postqueue", "-c", p.etc, "-j").Output()
	return bytes.Contains(out, []byte(`"address": "user@`+domain+`"`))
}

func (p *postfixMTA) forget(t *testing.T) {
	exec.Command("postsuper", "-c", p.etc, "-d", "ALL").Run()
}

// ---- Exim ----

type eximMTA struct {
	l    *mtaLab
	bin  string
	conf string
	dir  string
}

func TestEximEnforcesFetchedPolicy(t *testing.T) {
	bin := testenv.Exim(t)
	l := newMTALab(t)
	e := &eximMTA{l: l, bin: bin, dir: filepath.Join(l.dir, "exim")}
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(e.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run(t, exec.Command("chown", "-R", "Debian-exim:Debian-exim", filepath.Join(e.dir, "spool"), filepath.Join(e.dir, "log")))
	policy := filepath.Join(e.dir, "starttls-policy")
	conf := `exim_path = ` + bin + `
primary_hostname = mta-exim.lab.test
qualify_domain = lab.test
spool_directory = ` + e.dir + `/spool
log_file_path = ` + e.dir + `/log/%slog
pid_file_path = ` + e.dir + `/exim.pid
log_selector = +tls_certificate_verified +tls_peerdn +tls_sni +outgoing_port
keep_environment =
disable_ipv6 = true
local_interfaces = 127.0.0.1
daemon_smtp_ports = 2526
tls_advertise_hosts =

begin routers
drop_lab_bounces:
  driver = redirect
  domains = lab.test : mta.lab.test : mta-exim.lab.test
  data = :blackhole:
remote_mx:
  driver = dnslookup
  domains = *.test
  transport = remote_smtp
  no_more

begin transports
remote_smtp:
  driver = smtp
` + listgen.EximTransportSnippet(policy) + `
begin retry
* * F,2h,15m; G,16h,1h,1.5; F,4d,6h
`
	e.conf = l.write(t, "exim/exim.conf", []byte(conf))
	run(t, exec.Command(bin, "-C", e.conf, "-bV"))

	fo := FetchOptions{
		URL:        l.ts.url(),
		PublicKeys: []crypto.PublicKey{l.ts.key.Public()},
		StateDir:   filepath.Join(e.dir, "fetch-state"),
		EximFile:   policy,
		CAFile:     l.caFile,
	}
	l.scenario(t, "exim", e, fo)
}

var (
	exID     = regexp.MustCompile(`^\S+ \S+ (\S+) <= .* id=([^@ ]+)@lab\.test`)
	exResult = regexp.MustCompile(`^\S+ \S+ (\S+) (=>|==|\*\*) user@(\S+) (.*)$`)
)

func (e *eximMTA) deliver(t *testing.T, tags map[string]string, until func(string, verdict) bool) map[string]verdict {
	t.Helper()
	out := map[string]verdict{}
	for d, tag := range tags {
		// -odf: receive and deliver in the foreground, so the verdict is in
		// the log when the command returns.
		e.forget(t)
		cmd := e.l.inNS(e.bin, "-C", e.conf, "-odf", "-oi", "-f", "sender@lab.test", "user@"+d)
		cmd.Stdin = strings.NewReader(message(tag, d))
		cmd.CombinedOutput() // exits non-zero on a deferral
		log, _ := os.ReadFile(filepath.Join(e.dir, "log", "mainlog"))
		id := ""
		for line := range strings.Lines(string(log)) {
			if m := exID.FindStringSubmatch(line); m != nil && m[2] == tag {
				id = m[1]
			}
		}
		for line := range strings.Lines(string(log)) {
			m := exResult.FindStringSubmatch(strings.TrimSpace(line))
			if m == nil || m[1] != id || m[3] != d {
				continue
			}
			status := map[string]string{"=>": "sent", "==": "deferred", "**": "bounced"}[m[2]]
			out[d] = verdict{status, m[4]}
		}
		if _, ok := out[d]; !ok {
			t.Fatalf("exim: no verdict for %s (id %q) in mainlog:\n%s", d, id, log)
		}
	}
	return out
}

func (e *eximMTA) verified(t *testing.T, _ string, v verdict) bool {
	return strings.Contains(v.detail, " CV=yes ")
}

func (e *eximMTA) queued(t *testing.T, domain string) bool {
	out, _ := exec.Command(e.bin, "-C", e.conf, "-bp").Output()
	for line := range strings.Lines(string(out)) {
		if strings.TrimSpace(line) == "user@"+domain {
			return true
		}
	}
	return false
}

func (e *eximMTA) forget(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(e.dir, "spool", "db", "*"))
	for _, f := range files {
		os.Remove(f)
	}
}
