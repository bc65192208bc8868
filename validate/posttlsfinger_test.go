package validate_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testenv"
	"github.com/starttls-preload/starttls-preload/validate"
)

// postfixConfig returns a directory for MAIL_CONFIG whose main.cf holds
// mainCF, dated back an hour: Postfix waits for a main.cf written within
// the last seconds to age (dict_load_file), which would cost each run of
// posttls-finger up to two seconds.
func postfixConfig(tb testing.TB, mainCF string) string {
	tb.Helper()
	dir := tb.TempDir()
	p := filepath.Join(dir, "main.cf")
	if err := os.WriteFile(p, []byte(mainCF), 0o644); err != nil {
		tb.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p, hourAgo, hourAgo); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// TestPosttlsFingerAgrees runs Postfix's own probe, posttls-finger, at the
// "secure" level against the same lab peers as the validator and checks
// that both reach the same verdict for the same reason: what Postfix would
// refuse under a "secure" policy, the validator must not call eligible,
// and the other way round.
func TestPosttlsFingerAgrees(t *testing.T) {
	finger := testenv.LookPath(t, "posttls-finger")
	// posttls-finger reads main.cf; an empty one gives Postfix's defaults.
	mailConfig := postfixConfig(t, "")
	pki := lab.NewPKI(t)
	dnsServer := lab.NewDNS(t, "127.0.0.1:0")
	caFile := pki.WriteRootPEM(t)
	port := freePort(t, "127.0.0.60")

	cert := func(c tls.Certificate) func(string) *tls.Certificate {
		return func(string) *tls.Certificate { return &c }
	}
	tests := []struct {
		name string
		mode lab.Mode
		cert func(host string) *tls.Certificate
		// What each side must report.
		wantEligible bool
		wantCode     string // one of the validator's finding codes
		fingerSays   string // a line posttls-finger prints for this case
	}{
		{
			name: "trusted and matching", mode: lab.ModeGood,
			cert:         func(h string) *tls.Certificate { c := pki.Leaf(h); return &c },
			wantEligible: true, fingerSays: "Verified TLS connection established",
		},
		{
			name: "wildcard certificate", mode: lab.ModeGood,
			cert:         func(h string) *tls.Certificate { c := pki.Leaf("*." + strings.TrimPrefix(h, "mx.")); return &c },
			wantEligible: true, fingerSays: "Verified TLS connection established",
		},
		{
			name: "expiring in a week (a warning only)", mode: lab.ModeGood,
			cert:         func(h string) *tls.Certificate { c := pki.ExpiringIn(7*24*time.Hour, h); return &c },
			wantEligible: true, wantCode: validate.CodeCertExpiringSoon, fingerSays: "Verified TLS connection established",
		},
		{
			name: "self-signed", mode: lab.ModeGood,
			cert:     func(h string) *tls.Certificate { c := pki.SelfSigned(h); return &c },
			wantCode: validate.CodeCertUntrusted, fingerSays: "self-signed certificate",
		},
		{
			name: "unknown root", mode: lab.ModeGood,
			cert:     func(h string) *tls.Certificate { c := pki.Untrusted(h); return &c },
			wantCode: validate.CodeCertUntrusted, fingerSays: "untrusted issuer",
		},
		{
			name: "intermediate not sent", mode: lab.ModeGood,
			cert:     func(h string) *tls.Certificate { c := pki.LeafNoIntermediate(h); return &c },
			wantCode: validate.CodeCertUntrusted, fingerSays: "untrusted issuer",
		},
		{
			name: "name mismatch", mode: lab.ModeGood,
			cert:     cert(pki.Leaf("other.lab.test")),
			wantCode: validate.CodeCertHostnameMismatch, fingerSays: "hostname mismatch",
		},
		{
			name: "wildcard one label too high", mode: lab.ModeGood,
			cert:     cert(pki.Leaf("*.lab.test")),
			wantCode: validate.CodeCertHostnameMismatch, fingerSays: "hostname mismatch",
		},
		{
			name: "expired", mode: lab.ModeGood,
			cert:     func(h string) *tls.Certificate { c := pki.Expired(h); return &c },
			wantCode: validate.CodeCertExpired, fingerSays: "certificate has expired",
		},
		{
			name: "no STARTTLS", mode: lab.ModeNoSTARTTLS,
			cert:     func(string) *tls.Certificate { return nil },
			wantCode: validate.CodeSTARTTLSNotOffered, fingerSays: "< 250 ENHANCEDSTATUSCODES",
		},
		{
			name: "STARTTLS answered 454", mode: lab.ModeSTARTTLS454,
			cert:     func(h string) *tls.Certificate { c := pki.Leaf(h); return &c },
			wantCode: validate.CodeSTARTTLSCommandFailed, fingerSays: "STARTTLS rejected: 454",
		},
		{
			name: "TLS 1.0 only", mode: lab.ModeTLS10Only,
			cert:     func(h string) *tls.Certificate { c := pki.Leaf(h); return &c },
			wantCode: validate.CodeTLSVersionTooOld, fingerSays: "SSL_connect error",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ip := fmt.Sprintf("127.0.0.%d", 60+i)
			domain := fmt.Sprintf("case%d.lab.test", i)
			host := "mx." + domain
			lab.NewMX(t, net.JoinHostPort(ip, strconv.Itoa(port)), tt.mode, tt.cert(host))
			dnsServer.Add(domain+". 300 IN MX 10 "+host+".", host+". 300 IN A "+ip)

			// The validator.
			v, err := validate.New(validate.Config{
				Resolver:        dnsServer.Addr(),
				Roots:           pki.RootPool(),
				AllowPrivate:    true,
				Timeout:         10 * time.Second,
				GreetingTimeout: 10 * time.Second,
				SMTPPort:        port,
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Check(context.Background(), domain)
			if err != nil {
				t.Fatal(err)
			}
			codes := res.Codes()

			// posttls-finger: "[ip]:port" skips the MX look-up; the
			// trailing argument is the name the certificate must match,
			// as a "secure" policy with match=<mx host> requires.
			cmd := exec.Command(finger, "-l", "secure", "-F", caFile, "-t", "10", "-T", "10",
				"["+ip+"]:"+strconv.Itoa(port), host)
			cmd.Env = append(os.Environ(), "MAIL_CONFIG="+mailConfig)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("posttls-finger: %v\n%s", err, out)
			}
			// Postfix delivers under "secure" only after this line.
			fingerOK := strings.Contains(string(out), "Verified TLS connection established")

			if res.Eligible != fingerOK {
				t.Errorf("verdicts differ: validator eligible=%v (findings %v), posttls-finger verified=%v\n%s", res.Eligible, codes, fingerOK, out)
			}
			if res.Eligible != tt.wantEligible {
				t.Errorf("validator eligible=%v, want %v (findings %v)", res.Eligible, tt.wantEligible, codes)
			}
			if tt.wantCode != "" && !slices.Contains(codes, tt.wantCode) {
				t.Errorf("validator findings %v, want %s", codes, tt.wantCode)
			}
			if !strings.Contains(string(out), tt.fingerSays) {
				t.Errorf("posttls-finger output lacks %q:\n%s", tt.fingerSays, out)
			}
		})
	}
}

// freePort returns a TCP port free on ip, for peers that must share one
// port on several loopback addresses.
func freePort(t testing.TB, ip string) int {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
