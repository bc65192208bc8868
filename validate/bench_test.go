package validate_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testenv"
	"github.com/starttls-preload/starttls-preload/validate"
)

// The benchmarks below measure the validator on an in-process lab: a DNS
// server answering with the AD bit set (so DANE applies), MX hosts on many
// 127.x.y.z addresses sharing one port, and an HTTPS server for MTA-STS
// policies. Every domain publishes MX and TLS-RPT records, every MX host a
// DANE-EE TLSA record, and one domain in ten (-bench.sts-every) an MTA-STS
// record and policy: each check includes the MTA-STS, TLS-RPT and DANE
// look-ups. Figures and commands are in BENCHMARKS.md
// (scripts/bench-validate.sh runs them all).

const (
	benchDomain = "bench.test"
	// benchWorkers is how many domains are checked at once, and the bare
	// handshake loop's concurrency: both sides get the same parallelism.
	benchWorkers = 64
)

// stsEvery: one domain in stsEvery publishes an MTA-STS record and policy
// (0: none does; every domain's MTA-STS record is still looked up).
var stsEvery = flag.Int("bench.sts-every", 10, "one domain in N publishes MTA-STS in the validate benchmarks (0: none)")

// certPerHost gives every MX host a certificate of its own instead of one
// wildcard certificate for all (as a mail provider serves on its
// customers' MX names), so that no two checks see the same chain.
var certPerHost = flag.Bool("bench.cert-per-host", false, "give every MX host its own certificate in the validate benchmarks")

// benchLab is a lab with nHosts MX hosts and nDomains domains, domain i
// using MX host i % nHosts.
type benchLab struct {
	pki     *lab.PKI
	dns     *lab.DNS
	port    int
	caFile  string
	hosts   []string
	ips     []string
	domains []string
	mxs     []*lab.MX
	https   *httptest.Server
}

// newBenchLab starts the lab. The MX hosts listen on 127.<net>.x.y.
func newBenchLab(tb testing.TB, net2 int, nHosts, nDomains int, withMTASTS bool) *benchLab {
	tb.Helper()
	l := &benchLab{pki: lab.NewPKI(tb), dns: lab.NewDNS(tb, "127.0.0.1:0")}
	l.dns.SetAD(true)
	l.caFile = l.pki.WriteRootPEM(tb)
	cert := l.pki.Leaf("*." + benchDomain)
	spki := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	tlsa := hex.EncodeToString(spki[:])

	ipOf := func(i int) string { return fmt.Sprintf("127.%d.%d.%d", net2, i/250, i%250+1) }
	l.port = freePort(tb, ipOf(0))
	rrs := make([]string, 0, 2*nHosts+3*nDomains)
	var policyNames []string
	for i := range nHosts {
		host := fmt.Sprintf("mx%d.%s", i, benchDomain)
		ip := ipOf(i)
		l.hosts, l.ips = append(l.hosts, host), append(l.ips, ip)
		hostCert := &cert
		if *certPerHost {
			c := l.pki.Leaf(host)
			hostCert = &c
		}
		l.mxs = append(l.mxs, lab.NewMX(tb, net.JoinHostPort(ip, strconv.Itoa(l.port)), lab.ModeGood, hostCert))
		rrs = append(rrs,
			host+". 300 IN A "+ip,
			"_25._tcp."+host+". 300 IN TLSA 3 1 1 "+tlsa)
	}
	for i := range nDomains {
		d := fmt.Sprintf("d%d.%s", i, benchDomain)
		l.domains = append(l.domains, d)
		rrs = append(rrs,
			d+". 300 IN MX 10 "+l.hosts[i%nHosts]+".",
			`_smtp._tls.`+d+`. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@`+d+`"`)
		if withMTASTS && *stsEvery > 0 && i%*stsEvery == 0 {
			rrs = append(rrs, `_mta-sts.`+d+`. 300 IN TXT "v=STSv1; id=20260101"`)
			policyNames = append(policyNames, "mta-sts."+d)
		}
	}
	l.dns.Add(rrs...)
	if withMTASTS {
		// One certificate per policy host, as real policy hosts have.
		policyCerts := make(map[string]*tls.Certificate, len(policyNames))
		for _, n := range policyNames {
			c := l.pki.Leaf(n)
			policyCerts[n] = &c
		}
		l.https = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			fmt.Fprint(w, "version: STSv1\r\nmode: enforce\r\nmx: *."+benchDomain+"\r\nmax_age: 604800\r\n")
		}))
		l.https.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c, ok := policyCerts[hello.ServerName]; ok {
				return c, nil
			}
			return nil, fmt.Errorf("no certificate for %q", hello.ServerName)
		}}
		l.https.StartTLS()
		tb.Cleanup(l.https.Close)
	}
	return l
}

// validator returns a Validator for the lab. The policy client sends
// every mta-sts.<domain> name to the lab's HTTPS server, as DNS would.
func (l *benchLab) validator(tb testing.TB, dialer validate.Dialer) *validate.Validator {
	tb.Helper()
	cfg := validate.Config{
		Resolver:        l.dns.Addr(),
		Roots:           l.pki.RootPool(),
		AllowPrivate:    true,
		Timeout:         10 * time.Second,
		GreetingTimeout: 10 * time.Second,
		SMTPPort:        l.port,
		Concurrency:     benchWorkers,
		Dialer:          dialer,
	}
	if l.https != nil {
		addr := l.https.Listener.Addr().String()
		var d net.Dialer
		cfg.HTTPClient = &http.Client{
			Timeout: 10 * time.Second,
			Transport: &http.Transport{
				// As the validator's own policy client: classical key exchange.
				TLSClientConfig: &tls.Config{RootCAs: l.pki.RootPool(), MinVersion: tls.VersionTLS12,
					CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}},
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return d.DialContext(ctx, network, addr)
				},
				DisableKeepAlives: true,
			},
		}
	}
	v, err := validate.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// countingDialer counts connections per address.
type countingDialer struct {
	d  net.Dialer
	mu sync.Mutex
	n  map[string]int
}

func newCountingDialer() *countingDialer { return &countingDialer{n: map[string]int{}} }

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	c.n[addr]++
	c.mu.Unlock()
	return c.d.DialContext(ctx, network, addr)
}

func (c *countingDialer) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[string]int, len(c.n))
	for k, v := range c.n {
		m[k] = v
	}
	return m
}

// checkAll checks every domain through one Round with benchWorkers at a
// time and returns how many were eligible.
func checkAll(tb testing.TB, r *validate.Round, domains []string, withMTASTS bool) int {
	var next, eligible atomic.Int64
	var wg sync.WaitGroup
	for range benchWorkers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(domains)) {
					return
				}
				res, err := r.Check(context.Background(), domains[i])
				if err != nil {
					tb.Errorf("%s: %v", domains[i], err)
					continue
				}
				if withMTASTS && *stsEvery > 0 && int(i)%*stsEvery == 0 && (res.MTASTS == nil || res.MTASTS.Mode != "enforce") {
					tb.Errorf("%s: no MTA-STS policy: %v", domains[i], res.Findings)
				}
				if codes := res.Codes(); !slices.Contains(codes, validate.CodeDANEValid) || !slices.Contains(codes, validate.CodeTLSRPTPublished) {
					tb.Errorf("%s: DANE or TLS-RPT not seen: %v", domains[i], codes)
				}
				if res.Eligible {
					eligible.Add(1)
				} else {
					tb.Errorf("%s not eligible: %v", domains[i], res.Codes())
				}
			}
		})
	}
	wg.Wait()
	return int(eligible.Load())
}

// assertOneDialPerAddress checks that each MX address was dialled exactly
// rounds times: a Round shares each (host, address) check across domains.
func (l *benchLab) assertOneDialPerAddress(tb testing.TB, d *countingDialer, rounds int) {
	tb.Helper()
	counts := d.counts()
	if len(counts) != len(l.ips) {
		tb.Errorf("dialled %d addresses, want %d", len(counts), len(l.ips))
	}
	for _, ip := range l.ips {
		addr := net.JoinHostPort(ip, strconv.Itoa(l.port))
		if counts[addr] != rounds {
			tb.Errorf("%s dialled %d times in %d rounds, want once per round", addr, counts[addr], rounds)
		}
	}
}

// TestRoundChecksEachAddressOnce is the correctness property behind the
// shared-MX benchmark: in one Round, each MX address is contacted once,
// however many domains use it; a new Round contacts it again.
func TestRoundChecksEachAddressOnce(t *testing.T) {
	l := newBenchLab(t, 30, 10, 200, true)
	d := newCountingDialer()
	v := l.validator(t, d)
	for round := 1; round <= 2; round++ {
		if n := checkAll(t, v.NewRound(), l.domains, true); n != len(l.domains) {
			t.Fatalf("round %d: %d of %d domains eligible", round, n, len(l.domains))
		}
		l.assertOneDialPerAddress(t, d, round)
	}
}

// BenchmarkSharedMX: 2,000 domains sharing 50 MX hosts, one Round per
// iteration. Reports domains/s.
func BenchmarkSharedMX(b *testing.B) {
	benchRounds(b, newBenchLab(b, 31, 50, 2000, true), "domains")
}

// benchRounds checks every domain of l once per iteration, through a new
// Validator each time (every iteration is a run from cold, as `check`
// is, with nothing remembered from the one before), and reports the rate
// in unit/s and unit/cpu-s.
func benchRounds(b *testing.B, l *benchLab, unit string) {
	d := newCountingDialer()
	cpu0 := cpuSeconds(b)
	b.ResetTimer()
	for b.Loop() {
		checkAll(b, l.validator(b, d).NewRound(), l.domains, true)
	}
	b.StopTimer()
	l.assertOneDialPerAddress(b, d, b.N)
	n := float64(b.N * len(l.domains))
	b.ReportMetric(n/b.Elapsed().Seconds(), unit+"/s")
	b.ReportMetric(n/(cpuSeconds(b)-cpu0), unit+"/cpu-s")
}

// fingerSample is how many domains the posttls-finger baseline probes per
// iteration (one run per domain); its rate is what matters.
const fingerSample = 200

// BenchmarkSharedMXPosttlsFinger is the baseline for BenchmarkSharedMX:
// Postfix's posttls-finger once per domain, 8 in parallel, on the same lab
// ("[address]:port" skips its MX look-up, so it does less than the
// validator). Reports domains/s.
func BenchmarkSharedMXPosttlsFinger(b *testing.B) {
	finger := testenv.LookPath(b, "posttls-finger")
	mailConfig := postfixConfig(b, "")
	l := newBenchLab(b, 32, 50, fingerSample, false)
	env := append(os.Environ(), "MAIL_CONFIG="+mailConfig)
	cpu0 := cpuSeconds(b)
	b.ResetTimer()
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(l.domains) {
						return
					}
					h := i % len(l.hosts)
					cmd := exec.Command(finger, "-c", "-l", "secure", "-F", l.caFile,
						"["+l.ips[h]+"]:"+strconv.Itoa(l.port), l.hosts[h])
					cmd.Env = env
					out, err := cmd.CombinedOutput()
					if err != nil || !strings.Contains(string(out), "Verified TLS connection established") {
						b.Errorf("posttls-finger %s: %v\n%s", l.hosts[h], err, out)
					}
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	n := float64(b.N * len(l.domains))
	b.ReportMetric(n/b.Elapsed().Seconds(), "domains/s")
	b.ReportMetric(n/(cpuSeconds(b)-cpu0), "domains/cpu-s")
}

// BenchmarkDistinctMX: 2,000 domains on 2,000 distinct MX hosts, so that
// every domain costs a full SMTP/STARTTLS check. Reports checks/s.
func BenchmarkDistinctMX(b *testing.B) {
	benchRounds(b, newBenchLab(b, 33, 2000, 2000, true), "checks")
}

// BenchmarkDistinctMXBareHandshakes is the floor for BenchmarkDistinctMX:
// the same SMTP dialogue (220, EHLO, STARTTLS, verified TLS handshake with
// SNI, EHLO, QUIT) with net/smtp against the same 2,000 hosts, with the
// same concurrency, the same key exchanges and no DNS. Reports checks/s.
func BenchmarkDistinctMXBareHandshakes(b *testing.B) {
	l := newBenchLab(b, 34, 2000, 0, false)
	roots := l.pki.RootPool()
	cpu0 := cpuSeconds(b)
	b.ResetTimer()
	for b.Loop() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range benchWorkers {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(l.hosts) {
						return
					}
					if err := bareCheck(l.ips[i], l.port, l.hosts[i], roots); err != nil {
						b.Errorf("%s: %v", l.hosts[i], err)
					}
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
	n := float64(b.N * len(l.hosts))
	b.ReportMetric(n/b.Elapsed().Seconds(), "checks/s")
	b.ReportMetric(n/(cpuSeconds(b)-cpu0), "checks/cpu-s")
}

func bareCheck(ip string, port int, host string, roots *x509.CertPool) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	c, err := smtp.NewClient(conn, host) // reads the 220 greeting
	if err != nil {
		return err
	}
	if err := c.Hello("checker.bench.test"); err != nil {
		return err
	}
	// EHLO, STARTTLS, handshake (chain and name verified), EHLO again. The
	// key exchanges offered are the validator's probe's (classical, as
	// senders' OpenSSL offers them), so that both sides do the same work.
	if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12,
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}}); err != nil {
		return err
	}
	return c.Quit()
}

// cpuSeconds returns the CPU time (user and system) used so far by this
// process and its waited-for children: the lab's servers run in this
// process, so this counts both sides of every exchange. On a shared
// machine, rates per CPU-second are steadier than rates per wall second.
func cpuSeconds(tb testing.TB) float64 {
	var total float64
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if err := syscall.Getrusage(who, &ru); err != nil {
			tb.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	return total
}
