package validate

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/starttls-preload/starttls-preload/internal/lab"
)

// testLab is a DNS server, a PKI and fake MX hosts on 127.0.0.x sharing one
// port, so that one Validator (one SMTPPort) reaches them all.
type testLab struct {
	t    testing.TB
	pki  *lab.PKI
	dns  *lab.DNS
	port int

	mu     sync.Mutex
	nextIP int
	https  *httptest.Server
	policy map[string]policyResponse // by Host header
}

type policyResponse struct {
	status int
	ctype  string
	body   string
}

func newTestLab(t testing.TB) *testLab {
	l := &testLab{t: t, pki: lab.NewPKI(t), dns: lab.NewDNS(t, "127.0.0.1:0"), nextIP: 10, policy: map[string]policyResponse{}}
	// Reserve the port on the first address; every MX listens on it.
	ln, err := net.Listen("tcp", "127.0.0.10:0")
	if err != nil {
		t.Fatal(err)
	}
	l.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return l
}

// ip returns a fresh loopback address for a peer.
func (l *testLab) ip() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nextIP++
	if l.nextIP > 250 {
		l.t.Fatal("lab: out of loopback addresses")
	}
	return fmt.Sprintf("127.0.0.%d", l.nextIP)
}

// mx starts a peer and returns its address.
func (l *testLab) mx(mode lab.Mode, cert *tls.Certificate) string {
	ip := l.ip()
	lab.NewMX(l.t, net.JoinHostPort(ip, strconv.Itoa(l.port)), mode, cert)
	return ip
}

// good starts a ModeGood peer with a valid certificate for host and
// publishes host's A record.
func (l *testLab) good(host string) string {
	c := l.pki.Leaf(host)
	ip := l.mx(lab.ModeGood, &c)
	l.dns.Add(host + ". 300 IN A " + ip)
	return ip
}

func (l *testLab) validator(mod func(*Config)) *Validator {
	cfg := Config{
		Resolver:        l.dns.Addr(),
		Roots:           l.pki.RootPool(),
		AllowPrivate:    true,
		Timeout:         10 * time.Second,
		GreetingTimeout: 10 * time.Second,
		SMTPPort:        l.port,
		HELOName:        "checker.lab.test",
		HTTPClient:      l.httpClient(),
	}
	if mod != nil {
		mod(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	return v
}

// httpClient reaches the lab's HTTPS server whatever the host name, as
// DNS would send it there, and trusts the lab's root.
func (l *testLab) httpClient() *http.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.https == nil {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			l.mu.Lock()
			p, ok := l.policy[r.Host]
			l.mu.Unlock()
			if !ok || r.URL.Path != "/.well-known/mta-sts.txt" {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", p.ctype)
			w.WriteHeader(p.status)
			fmt.Fprint(w, p.body)
		}))
		srv.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			c := l.pki.Leaf(hello.ServerName)
			return &c, nil
		}}
		srv.StartTLS()
		l.t.Cleanup(srv.Close)
		l.https = srv
	}
	addr := l.https.Listener.Addr().String()
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: l.pki.RootPool()},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}}
}

func (l *testLab) servePolicy(domain string, p policyResponse) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.policy["mta-sts."+domain] = p
}

func spkiSHA256(c tls.Certificate) string {
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// quiet are info codes that most cases produce and do not assert.
var quiet = []string{CodeMTASTSNotPublished, CodeTLSRPTNotPublished}

func TestCheckFindings(t *testing.T) {
	l := newTestLab(t)
	v := l.validator(nil)
	// Short deadlines for the cases that wait for them; generous ones for
	// every other step, so that a busy machine does not change the result.
	fastDNS := l.validator(func(c *Config) { c.Timeout = time.Second })
	fast := l.validator(func(c *Config) { c.GreetingTimeout = 300 * time.Millisecond })
	strict := l.validator(func(c *Config) { c.AllowPrivate = false })
	// A clock 80 days ahead: a fresh 90-day leaf expires within 14 days.
	later := l.validator(func(c *Config) { c.Now = func() time.Time { return time.Now().Add(80 * 24 * time.Hour) } })

	tests := []struct {
		name     string
		v        *Validator
		setup    func(d string) // d is the domain under test, "<name>.test"
		codes    []string       // every code expected, in any order, besides quiet ones
		eligible bool
	}{
		{name: "good", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", d+". 300 IN MX 20 mx2."+d+".")
			l.good("mx." + d)
			l.good("mx2." + d)
		}, codes: []string{CodeMTASTSNotPublished, CodeTLSRPTNotPublished}, eligible: true},
		{name: "nxdomain", setup: func(d string) {}, codes: []string{CodeDNSNXDomain}},
		{name: "servfail", setup: func(d string) {
			l.dns.SetRcode(d, dns.TypeMX, dns.RcodeServerFailure)
			l.dns.Add("_mta-sts." + d + ". 300 IN TXT \"x\"")
		}, codes: []string{CodeDNSLookupFailed}},
		{name: "dns timeout", v: fastDNS, setup: func(d string) {
			l.dns.Drop(d)
		}, codes: []string{CodeDNSLookupFailed}},
		{name: "null mx", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 0 .")
		}, codes: []string{CodeDNSNullMX}},
		{name: "implicit mx", setup: func(d string) {
			l.good(d)
		}, codes: []string{CodeDNSImplicitMX}, eligible: true},
		{name: "no mx no address", setup: func(d string) {
			l.dns.Add(d + ". 300 IN TXT \"hello\"")
		}, codes: []string{CodeDNSNoMX}},
		{name: "mx without address", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 nowhere." + d + ".")
		}, codes: []string{CodeDNSNoAddress}},
		{name: "mx address lookup fails", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
			l.good("mx." + d)
			l.dns.SetRcode("mx."+d, dns.TypeAAAA, dns.RcodeServerFailure)
		}, codes: []string{CodeDNSLookupFailed}},
		{name: "mx cname", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 alias."+d+".", "alias."+d+". 300 IN CNAME mx."+d+".")
			c := l.pki.Leaf("alias." + d)
			ip := l.mx(lab.ModeGood, &c)
			l.dns.Add("mx." + d + ". 300 IN A " + ip)
		}, codes: []string{CodeDNSMXCNAME}, eligible: true},
		{name: "mx ip literal", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 127.0.0.9.")
		}, codes: []string{CodeDNSMXIPLiteral, CodeDNSNoAddress}},
		{name: "too many addresses", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
			for i := range maxAddrsPerHost + 1 {
				l.dns.Add(fmt.Sprintf("mx.%s. 300 IN A 127.0.1.%d", d, i+1))
			}
		}, codes: []string{CodeDNSTooManyRecords, CodeMXConnectFailed}},
		{name: "too many mx hosts", setup: func(d string) {
			for i := range maxMXHosts + 1 {
				l.dns.Add(fmt.Sprintf("%s. 300 IN MX 10 mx%d.%s.", d, i, d))
			}
		}, codes: []string{CodeDNSTooManyRecords, CodeDNSNoAddress}},
		{name: "private address", v: strict, setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
			l.good("mx." + d)
		}, codes: []string{CodeMXPrivateAddress}},
		{name: "connection refused", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.ip())
		}, codes: []string{CodeMXConnectFailed}},
		{name: "tarpit", v: fast, setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeTarpit, nil))
		}, codes: []string{CodeMXTimeout}},
		{name: "bad greeting", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeBadGreeting, nil))
		}, codes: []string{CodeSMTPBadResponse}},
		{name: "endless banner", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeEndlessBanner, nil))
		}, codes: []string{CodeSMTPBadResponse}},
		{name: "endless line", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeEndlessLine, nil))
		}, codes: []string{CodeSMTPBadResponse}},
		{name: "ehlo fails after tls", setup: func(d string) {
			c := l.pki.Leaf("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeEHLOFailsAfterTLS, &c))
		}, codes: []string{CodeSMTPBadResponse}},
		{name: "no starttls", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeNoSTARTTLS, nil))
		}, codes: []string{CodeSTARTTLSNotOffered}},
		{name: "starttls 454", setup: func(d string) {
			c := l.pki.Leaf("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeSTARTTLS454, &c))
		}, codes: []string{CodeSTARTTLSCommandFailed}},
		{name: "handshake fails", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeTLSHandshakeFails, nil))
		}, codes: []string{CodeTLSHandshakeFailed}},
		{name: "tls 1.0 only", setup: func(d string) {
			c := l.pki.Leaf("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeTLS10Only, &c))
		}, codes: []string{CodeTLSVersionTooOld}},
		{name: "leaf without intermediate", setup: func(d string) {
			c := l.pki.LeafNoIntermediate("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertUntrusted}},
		{name: "self-signed", setup: func(d string) {
			c := l.pki.SelfSigned("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertUntrusted}},
		{name: "unknown root", setup: func(d string) {
			c := l.pki.Untrusted("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertUntrusted}},
		{name: "expired", setup: func(d string) {
			c := l.pki.Expired("mx." + d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertExpired}},
		{name: "name mismatch", setup: func(d string) {
			c := l.pki.Leaf("other.example.test")
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertHostnameMismatch}},
		{name: "expiring soon", setup: func(d string) {
			c := l.pki.ExpiringIn(72*time.Hour, "mx."+d)
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "mx."+d+". 300 IN A "+l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertExpiringSoon}, eligible: true},
		{name: "expiring soon by the injected clock", v: later, setup: func(d string) {
			l.good("mx." + d)
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
		}, codes: []string{CodeCertExpiringSoon}, eligible: true},
		{name: "two mx one bad", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx1."+d+".", d+". 300 IN MX 20 mx2."+d+".")
			l.good("mx1." + d)
			l.dns.Add("mx2." + d + ". 300 IN A " + l.mx(lab.ModeNoSTARTTLS, nil))
		}, codes: []string{CodeSTARTTLSNotOffered}},
		{name: "one mx two addresses one bad", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
			l.good("mx." + d)
			c := l.pki.SelfSigned("mx." + d)
			l.dns.Add("mx." + d + ". 300 IN A " + l.mx(lab.ModeGood, &c))
		}, codes: []string{CodeCertUntrusted}},
		{name: "mta-sts enforce", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=20260101\"")
			l.good("mx." + d)
			l.servePolicy(d, policyResponse{200, "text/plain", "version: STSv1\nmode: enforce\nmx: *." + d + "\nmax_age: 86400\n"})
		}, codes: []string{CodeMTASTSEnforce}, eligible: true},
		{name: "mta-sts testing, mx not covered", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"")
			l.good("mx." + d)
			l.servePolicy(d, policyResponse{200, "text/plain", "version: STSv1\nmode: testing\nmx: mail.elsewhere.test\nmax_age: 86400\n"})
		}, codes: []string{CodeMTASTSModeTesting, CodeMTASTSMXNotCovered}, eligible: true},
		{name: "mta-sts mode none", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"")
			l.good("mx." + d)
			l.servePolicy(d, policyResponse{200, "text/plain", "version: STSv1\nmode: none\nmax_age: 86400\n"})
		}, codes: []string{CodeMTASTSModeNone}, eligible: true},
		{name: "mta-sts policy invalid", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"")
			l.good("mx." + d)
			l.servePolicy(d, policyResponse{200, "text/plain", "version: STSv1\nmode: sometimes\n"})
		}, codes: []string{CodeMTASTSPolicyInvalid}, eligible: true},
		{name: "mta-sts policy missing", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"")
			l.good("mx." + d)
		}, codes: []string{CodeMTASTSFetchFailed}, eligible: true},
		{name: "mta-sts two records", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=2\"")
			l.good("mx." + d)
		}, codes: []string{CodeMTASTSRecordInvalid}, eligible: true},
		// RFC 8461 §3.2: duplicated fields are ignored after the first (the
		// policy is enforce, not testing), with a warning for the owner.
		{name: "mta-sts duplicate fields", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1; id=2\"")
			l.good("mx." + d)
			l.servePolicy(d, policyResponse{200, "text/plain", "version: STSv1\nmode: enforce\nmode: testing\nmx: *." + d + "\nmax_age: 86400\n"})
		}, codes: []string{CodeMTASTSDuplicateField, CodeMTASTSEnforce}, eligible: true},
		// RFC 8461 §3.1: a TXT string that does not begin with "v=STSv1;" is
		// discarded before the records are counted.
		{name: "mta-sts one record beside a bare version", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"", "_mta-sts."+d+". 300 IN TXT \"v=STSv1\"")
			l.good("mx." + d)
			l.servePolicy(d, policyResponse{200, "text/plain", "version: STSv1\nmode: enforce\nmx: *." + d + "\nmax_age: 86400\n"})
		}, codes: []string{CodeMTASTSEnforce}, eligible: true},
		{name: "mta-sts lookup fails", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
			l.dns.SetRcode("_mta-sts."+d, dns.TypeTXT, dns.RcodeServerFailure)
			l.good("mx." + d)
		}, codes: []string{CodeMTASTSLookupFailed}, eligible: true},
		{name: "tls-rpt", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_smtp._tls."+d+". 300 IN TXT \"v=TLSRPTv1; rua=mailto:tls@"+d+"\"")
			l.good("mx." + d)
		}, codes: []string{CodeTLSRPTPublished}, eligible: true},
		{name: "tls-rpt invalid", setup: func(d string) {
			l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_smtp._tls."+d+". 300 IN TXT \"v=TLSRPTv1; rua=gopher://x\"")
			l.good("mx." + d)
		}, codes: []string{CodeTLSRPTRecordInvalid}, eligible: true},
		{name: "tls-rpt lookup fails", setup: func(d string) {
			l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
			l.dns.SetRcode("_smtp._tls."+d, dns.TypeTXT, dns.RcodeServerFailure)
			l.good("mx." + d)
		}, codes: []string{CodeTLSRPTLookupFailed}, eligible: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := slug(tt.name) + ".test"
			tt.setup(d)
			vv := tt.v
			if vv == nil {
				vv = v
			}
			res, err := vv.Check(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			assertCodes(t, res, tt.codes, tt.eligible)
		})
	}
}

// TestCheckDANE runs on a resolver that sets the AD bit, as a validating
// resolver does for signed zones.
func TestCheckDANE(t *testing.T) {
	l := newTestLab(t)
	l.dns.SetAD(true)
	v := l.validator(nil)
	tests := []struct {
		name     string
		tlsa     func(c tls.Certificate) string // TLSA RDATA, "" for none
		codes    []string
		eligible bool
	}{
		{"no tlsa", func(tls.Certificate) string { return "" }, nil, true},
		{"dane-ee matches", func(c tls.Certificate) string { return "3 1 1 " + spkiSHA256(c) }, []string{CodeDANEValid}, true},
		{"dane-ta matches", func(c tls.Certificate) string {
			sum := sha256.Sum256(l.pki.Intermediate().Raw)
			return "2 0 1 " + hex.EncodeToString(sum[:])
		}, []string{CodeDANEValid}, true},
		{"mismatch", func(tls.Certificate) string { return "3 1 1 " + hex.EncodeToString(make([]byte, 32)) }, []string{CodeDANEMismatch}, false},
		// RFC 6698 §2.1.1, RFC 7671 §5.2.2: DANE-TA names an issuer, never
		// the leaf itself (OpenSSL, Postfix and Exim agree).
		{"dane-ta matches the leaf itself", func(c tls.Certificate) string { return "2 1 1 " + spkiSHA256(c) }, []string{CodeDANEMismatch}, false},
		{"tlsa lookup fails", func(tls.Certificate) string { return "servfail" }, []string{CodeDANELookupFailed}, true},
		{"pkix usages only", func(c tls.Certificate) string { return "1 1 1 " + spkiSHA256(c) }, []string{CodeDANEUnusable}, true},
		// RFC 7672 §3.1.2: "2 0 0" carries the anchor, so the server (leaf
		// and intermediate) may omit the root; a digest cannot stand in.
		{"dane-ta root omitted 2 0 0", func(tls.Certificate) string { return "2 0 0 " + hex.EncodeToString(l.pki.Root().Raw) }, []string{CodeDANEValid}, true},
		{"dane-ta root omitted 2 1 0", func(tls.Certificate) string {
			return "2 1 0 " + hex.EncodeToString(l.pki.Root().RawSubjectPublicKeyInfo)
		}, []string{CodeDANEValid}, true},
		{"dane-ta root omitted 2 0 1", func(tls.Certificate) string {
			sum := sha256.Sum256(l.pki.Root().Raw)
			return "2 0 1 " + hex.EncodeToString(sum[:])
		}, []string{CodeDANEMismatch}, false},
		{"dane-ta 2 0 0 not a certificate", func(tls.Certificate) string { return "2 0 0 0badc0de" }, []string{CodeDANEUnusable}, true},
		// RFC 7671 §9: a SHA2-512 record retires the SHA2-256 one of the
		// same usage and selector (records separated by ";").
		{"sha-512 published, only sha-256 matches", func(c tls.Certificate) string {
			return "3 1 1 " + spkiSHA256(c) + ";3 1 2 " + hex.EncodeToString(make([]byte, 64))
		}, []string{CodeDANEMismatch}, false},
		{"sha-512 matches, sha-256 stale", func(c tls.Certificate) string {
			sum := sha512.Sum512(c.Leaf.RawSubjectPublicKeyInfo)
			return "3 1 2 " + hex.EncodeToString(sum[:]) + ";3 1 1 " + hex.EncodeToString(make([]byte, 32))
		}, []string{CodeDANEValid}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := slug(tt.name) + ".test"
			host := "mx." + d
			c := l.pki.Leaf(host)
			l.dns.Add(d+". 300 IN MX 10 "+host+".", host+". 300 IN A "+l.mx(lab.ModeGood, &c))
			if r := tt.tlsa(c); r == "servfail" {
				l.dns.SetRcode("_25._tcp."+host, dns.TypeTLSA, dns.RcodeServerFailure)
			} else if r != "" {
				for _, r := range strings.Split(r, ";") {
					l.dns.Add("_25._tcp." + host + ". 300 IN TLSA " + r)
				}
			}
			res, err := v.Check(t.Context(), d)
			if err != nil {
				t.Fatal(err)
			}
			if !res.DNSSEC {
				t.Errorf("DNSSEC = false on an authenticated answer")
			}
			assertCodes(t, res, tt.codes, tt.eligible)
		})
	}
}

// TestDANETAOnTheLeafMessage: the finding says why a DANE-TA record for the
// leaf does not match, and what to publish instead.
func TestDANETAOnTheLeafMessage(t *testing.T) {
	l := newTestLab(t)
	l.dns.SetAD(true)
	d := "dane-ta-leaf.test"
	host := "mx." + d
	c := l.pki.Leaf(host)
	l.dns.Add(d+". 300 IN MX 10 "+host+".", host+". 300 IN A "+l.mx(lab.ModeGood, &c), "_25._tcp."+host+". 300 IN TLSA 2 1 1 "+spkiSHA256(c))
	res, err := l.validator(nil).Check(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range res.Findings {
		if f.Code != CodeDANEMismatch {
			continue
		}
		n++
		for _, want := range []string{"matches the leaf certificate itself", "RFC 6698 §2.1.1", "RFC 7671 §5.2.2", "Postfix and Exim", "DANE-EE(3)"} {
			if !strings.Contains(f.Message, want) {
				t.Errorf("message %q lacks %q", f.Message, want)
			}
		}
	}
	if n == 0 {
		t.Fatalf("no %s finding: %+v", CodeDANEMismatch, res.Findings)
	}
}

func assertCodes(t *testing.T, res *Result, want []string, eligible bool) {
	t.Helper()
	var got []string
	for _, c := range res.Codes() {
		if !slices.Contains(quiet, c) || slices.Contains(want, c) {
			got = append(got, c)
		}
	}
	slices.Sort(got)
	got = slices.Compact(got)
	w := slices.Clone(want)
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("codes = %v, want %v", got, w)
		for _, f := range res.Findings {
			t.Logf("  %s %s %s %s: %s", f.Code, f.Severity, f.Host, f.IP, f.Message)
		}
	}
	if res.Eligible != eligible {
		t.Errorf("eligible = %v, want %v", res.Eligible, eligible)
	}
	if res.MXs == nil || res.Findings == nil {
		t.Errorf("nil slices in result: mxs %v findings %v", res.MXs == nil, res.Findings == nil)
	}
	for _, f := range res.Findings {
		if _, ok := codes[f.Code]; !ok || f.Summary == "" || f.Message == "" {
			t.Errorf("finding %+v is not documented", f)
		}
	}
}

func slug(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		default:
			b[i] = '-'
		}
	}
	return string(b)
}

// TestEveryCodeHasALabCase keeps one lab case per finding code: every Code*
// constant of codes.go must be expected by a case in this file.
func TestEveryCodeHasALabCase(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "codes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	src := readFile(t, "lab_test.go")
	n := 0
	for _, decl := range f.Decls {
		gd, ok := decl.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			for _, name := range spec.(*ast.ValueSpec).Names {
				if !strings.HasPrefix(name.Name, "Code") {
					continue
				}
				n++
				if !strings.Contains(src, "[]string{"+name.Name) && !strings.Contains(src, ", "+name.Name+"}") && !strings.Contains(src, ", "+name.Name+",") {
					t.Errorf("no lab case expects %s", name.Name)
				}
			}
		}
	}
	if n != len(codes) {
		t.Errorf("%d Code constants, %d codes in the table", n, len(codes))
	}
}

// TestMTASTSFetchRefusesPrivateAddress uses the default policy client: the
// policy host resolves to loopback, which a public check must not contact.
func TestMTASTSFetchRefusesPrivateAddress(t *testing.T) {
	l := newTestLab(t)
	v := l.validator(func(c *Config) { c.AllowPrivate, c.HTTPClient = false, nil })
	d := "private-policy.test"
	l.dns.Add(d+". 300 IN MX 10 mx."+d+".", "_mta-sts."+d+". 300 IN TXT \"v=STSv1; id=1\"", "mta-sts."+d+". 300 IN A 127.0.0.1")
	l.good("mx." + d)
	res, err := v.Check(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	var msg string
	for _, f := range res.Findings {
		if f.Code == CodeMTASTSFetchFailed {
			msg = f.Message
		}
	}
	if !strings.Contains(msg, "non-public address 127.0.0.1") {
		t.Errorf("policy fetch finding %q, want a refusal of 127.0.0.1; codes %v", msg, res.Codes())
	}
}

// TestCheckDualStack checks an MX with an A and an AAAA record: both
// addresses are checked, and the IPv6 one fails.
func TestCheckDualStack(t *testing.T) {
	l := newTestLab(t)
	ln, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(l.port)))
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	v := l.validator(nil)
	d := "dual-stack.test"
	l.dns.Add(d + ". 300 IN MX 10 mx." + d + ".")
	l.good("mx." + d)
	lab.NewMX(t, net.JoinHostPort("::1", strconv.Itoa(l.port)), lab.ModeNoSTARTTLS, nil)
	l.dns.Add("mx." + d + ". 300 IN AAAA ::1")
	res, err := v.Check(t.Context(), d)
	if err != nil {
		t.Fatal(err)
	}
	assertCodes(t, res, []string{CodeSTARTTLSNotOffered}, false)
	if len(res.MXs) != 1 || len(res.MXs[0].Addresses) != 2 {
		t.Fatalf("mxs = %+v, want one host with two addresses", res.MXs)
	}
	for _, a := range res.MXs[0].Addresses {
		if want := a.IP != "::1"; a.OK != want {
			t.Errorf("%s ok = %v, want %v", a.IP, a.OK, want)
		}
	}
	for _, f := range res.Findings {
		if f.Code == CodeSTARTTLSNotOffered && f.IP != "::1" {
			t.Errorf("finding on %s, want ::1", f.IP)
		}
	}
}

// TestSharedCertificateAcrossHosts: MX hosts serving one certificate are
// checked through one Validator, which verifies the chain once; each host
// name is still matched on its own, and a host serving the same leaf
// without its intermediate is still untrusted.
func TestSharedCertificateAcrossHosts(t *testing.T) {
	l := newTestLab(t)
	v := l.validator(nil)
	shared := l.pki.Leaf("mx.a.test", "mx.b.test")
	alone := tls.Certificate{Certificate: shared.Certificate[:1], PrivateKey: shared.PrivateKey, Leaf: shared.Leaf}
	for _, h := range []struct {
		host string
		cert *tls.Certificate
	}{{"mx.a.test", &shared}, {"mx.b.test", &shared}, {"mx.c.test", &shared}, {"mx.d.test", &alone}} {
		l.dns.Add(h.host + ". 300 IN A " + l.mx(lab.ModeGood, h.cert))
	}
	for _, tt := range []struct {
		domain, mx string
		codes      []string
		eligible   bool
	}{
		{"a.test", "mx.a.test", []string{CodeMTASTSNotPublished, CodeTLSRPTNotPublished}, true},
		{"b.test", "mx.b.test", []string{CodeMTASTSNotPublished, CodeTLSRPTNotPublished}, true},
		{"c.test", "mx.c.test", []string{CodeCertHostnameMismatch}, false},
		{"d.test", "mx.d.test", []string{CodeCertUntrusted, CodeCertHostnameMismatch}, false},
		{"a2.test", "mx.a.test", []string{CodeMTASTSNotPublished, CodeTLSRPTNotPublished}, true},
	} {
		l.dns.Add(tt.domain + ". 300 IN MX 10 " + tt.mx + ".")
		res, err := v.Check(context.Background(), tt.domain)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tt.domain, func(t *testing.T) { assertCodes(t, res, tt.codes, tt.eligible) })
	}
}
