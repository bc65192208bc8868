//go:build linux

package validate_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testenv"
	"github.com/starttls-preload/starttls-preload/validate"
)

// TestPosttlsFingerAgreesOnDANE runs Postfix's own probe, posttls-finger,
// at the "dane" and the "secure" levels against the same lab MX hosts,
// DNSSEC-authenticated MX, A and TLSA answers as the validator, and checks
// that both reach the same verdicts.
//
// "Agree" means two things, because the validator answers two questions:
//
//   - The DANE verdict (RFC 7672): the validator's dane.* code is the one
//     posttls-finger reaches at the "dane" level. dane.valid: it logs
//     "Matched DANE ..." and "Verified TLS connection established".
//     dane.mismatch: it refuses the chain ("no matching DANE TLSA records",
//     or a DANE-TA chain whose leaf does not name the MX host). dane.unusable:
//     it drops every record and falls back to another level (see below).
//   - Eligibility: the preload list is enforced as a "secure" (PKIX) policy,
//     and a domain must not break its DANE senders either, so the validator
//     calls a domain eligible exactly when posttls-finger verifies it at the
//     "secure" level and does not refuse it at the "dane" level. A
//     certificate that only DANE-EE vouches for (self-signed, expired, for
//     another name: RFC 7672 §3.1.1 checks neither names nor dates) is
//     dane.valid yet not eligible.
//
// Postfix drops unusable records at two places, and falls back differently
// (postconf(5), smtp_tls_security_level): records with a usage it does not
// support (PKIX-TA(0), PKIX-EE(1), RFC 7672 §3.1.3) are dropped when the
// TLSA RRset is looked up ("unsupported TLSA certificate usage"), as if
// none were published, so posttls-finger goes on at "secure" and smtp(8) at
// "may"; records with a usable usage whose data cannot be used (a digest of
// the wrong length, a "2 0 0" that is not a certificate) are dropped later
// ("unusable TLSA RR", "all TLSA records unusable, fallback to
// unauthenticated TLS"), and both go on at "encrypt". Either way DANE does
// not authenticate the server: the validator says dane.unusable for both.
//
// posttls-finger resolves through glibc (resolv.conf, port 53): it runs in
// a private mount namespace where /etc/resolv.conf names the lab DNS server
// on port 53 of a random 127.X.Y.53 (unshare -m makes the bind mount
// private: the rest of the machine keeps its resolv.conf), and reads a
// main.cf with smtp_dns_support_level = dnssec, without which Postfix
// asks for no DNSSEC and uses no TLSA records. The resolv.conf says
// "options trust-ad", although Postfix does not need it: it sets
// RES_TRUSTAD itself when it asks for DNSSEC (seen with Postfix 3.7 and
// glibc 2.36: the verdicts are the same without the option). The MX hosts
// listen on port 25, so that both sides look up _25._tcp.<mx> TLSA
// (posttls-finger looks up _<port>._tcp.<mx>). The last subtest is the
// control: without the AD bit, neither side uses TLSA records.
func TestPosttlsFingerAgreesOnDANE(t *testing.T) {
	testenv.Root(t)
	finger := testenv.LookPath(t, "posttls-finger")
	unshare := testenv.LookPath(t, "unshare")
	testenv.LookPath(t, "mount") // run by the shell inside the namespace

	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mailConfig := postfixConfig(t, "smtp_dns_support_level = dnssec\n")
	// A random network keeps two runs of the tests on one machine apart;
	// none of its addresses is an interface address.
	subnet := fmt.Sprintf("127.%d.%d.", 1+rand.IntN(254), rand.IntN(256))
	resolv := write("resolv.conf", "nameserver "+subnet+"53\noptions trust-ad timeout:2 attempts:2\n")
	dnsServer := lab.NewDNS(t, subnet+"53:53")
	dnsServer.SetAD(true)
	pki := lab.NewPKI(t)
	caFile := pki.WriteRootPEM(t)

	// A second server, on .54, answers without the AD bit, as for an
	// unsigned zone.
	unsigned := lab.NewDNS(t, subnet+"54:53")
	resolvUnsigned := write("resolv-unsigned.conf", "nameserver "+subnet+"54\noptions trust-ad timeout:2 attempts:2\n")
	{
		host, ip := "mx.unsigned.lab.test", subnet+"99"
		c := pki.Leaf(host)
		lab.NewMX(t, ip+":25", lab.ModeGood, &c)
		unsigned.Add("unsigned.lab.test. 300 IN MX 10 "+host+".", host+". 300 IN A "+ip,
			"_25._tcp."+host+". 300 IN TLSA 3 1 1 "+hex.EncodeToString(make([]byte, 32)))
	}

	newValidator := func(resolver string) *validate.Validator {
		v, err := validate.New(validate.Config{
			Resolver:        resolver,
			Roots:           pki.RootPool(),
			AllowPrivate:    true,
			Timeout:         10 * time.Second,
			GreetingTimeout: 10 * time.Second,
			SMTPPort:        25,
		})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v := newValidator(dnsServer.Addr())

	// runFinger probes domain (MX look-up included) at level; the trailing
	// argument is the name a "secure" policy with match=<mx host> requires.
	runFinger := func(t *testing.T, resolvConf, level, domain, host string) string {
		t.Helper()
		cmd := exec.Command(unshare, "-m", "sh", "-c", `mount --bind "$0" /etc/resolv.conf && exec "$@"`, resolvConf,
			finger, "-c", "-l", level, "-F", caFile, "-t", "10", "-T", "10", domain, host)
		cmd.Env = append(os.Environ(), "MAIL_CONFIG="+mailConfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("posttls-finger -l %s: %v\n%s", level, err, out)
		}
		return string(out)
	}

	sha := func(b []byte, matchingType int) string {
		if matchingType == 2 {
			s := sha512.Sum512(b)
			return hex.EncodeToString(s[:])
		}
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	zeros := func(n int) string { return hex.EncodeToString(make([]byte, n)) }
	// leafKey is a "<usage> 1 <matchingType>" record on the leaf's key,
	// followed by extra records.
	leafKey := func(usage, matchingType int, extra ...string) func(tls.Certificate) []string {
		return func(c tls.Certificate) []string {
			r := fmt.Sprintf("%d 1 %d %s", usage, matchingType, sha(c.Leaf.RawSubjectPublicKeyInfo, matchingType))
			return append([]string{r}, extra...)
		}
	}
	records := func(rs ...string) func(tls.Certificate) []string {
		return func(tls.Certificate) []string { return rs }
	}
	good := func(h string) tls.Certificate { return pki.Leaf(h) }
	otherName := func(string) tls.Certificate { return pki.Leaf("other.lab.test") }

	tests := []struct {
		name string
		cert func(host string) tls.Certificate // served with its chain (pki.Leaf: leaf + intermediate)
		tlsa func(c tls.Certificate) []string  // _25._tcp.<mx> TLSA RDATA
		// The validator: eligibility and the codes it must report (the
		// dane.* code among them is the DANE verdict).
		wantEligible bool
		wantCodes    []string
		// A line posttls-finger prints at the "dane" level for this case.
		fingerSays string
	}{
		{
			name: "dane-ee 3 1 1 matches a trusted certificate",
			cert: good, tlsa: leafKey(3, 1),
			wantEligible: true, wantCodes: []string{validate.CodeDANEValid},
			fingerSays: "Matched DANE EE certificate at depth 0: 3 1 1",
		},
		{
			// DANE senders deliver; the list's "secure" policy would not.
			name: "dane-ee 3 1 1 matches a self-signed certificate",
			cert: func(h string) tls.Certificate { return pki.SelfSigned(h) }, tlsa: leafKey(3, 1),
			wantCodes:  []string{validate.CodeDANEValid, validate.CodeCertUntrusted},
			fingerSays: "Matched DANE EE certificate at depth 0: 3 1 1",
		},
		{
			// RFC 7672 §3.1.1: DANE-EE ignores the validity dates.
			name: "dane-ee 3 1 1 matches an expired certificate",
			cert: func(h string) tls.Certificate { return pki.Expired(h) }, tlsa: leafKey(3, 1),
			wantCodes:  []string{validate.CodeDANEValid, validate.CodeCertExpired},
			fingerSays: "Matched DANE EE certificate at depth 0: 3 1 1",
		},
		{
			// RFC 7672 §3.1.1: DANE-EE ignores the names.
			name: "dane-ee 3 1 1 matches a certificate for another name",
			cert: otherName, tlsa: leafKey(3, 1),
			wantCodes:  []string{validate.CodeDANEValid, validate.CodeCertHostnameMismatch},
			fingerSays: "Matched DANE EE certificate at depth 0: 3 1 1",
		},
		{
			name: "dane-ee 3 1 1 does not match",
			cert: good, tlsa: records("3 1 1 " + zeros(32)),
			wantCodes:  []string{validate.CodeDANEMismatch},
			fingerSays: "num=65:no matching DANE TLSA records",
		},
		{
			name: "dane-ta 2 0 1 on the intermediate",
			cert: good, tlsa: records("2 0 1 " + sha(pki.Intermediate().Raw, 1)),
			wantEligible: true, wantCodes: []string{validate.CodeDANEValid},
			fingerSays: "Matched DANE TA certificate at depth 1: 2 0 1",
		},
		{
			// RFC 7672 §3.2.2: with DANE-TA the leaf must name the MX host.
			name: "dane-ta 2 0 1 on the intermediate, leaf for another name",
			cert: otherName, tlsa: records("2 0 1 " + sha(pki.Intermediate().Raw, 1)),
			wantCodes:  []string{validate.CodeDANEMismatch, validate.CodeCertHostnameMismatch},
			fingerSays: "num=62:hostname mismatch",
		},
		{
			// RFC 7672 §3.1.2: a "2 0 0" record carries the anchor whole.
			name: "dane-ta 2 0 0 with the root not sent",
			cert: good, tlsa: records("2 0 0 " + hex.EncodeToString(pki.Root().Raw)),
			wantEligible: true, wantCodes: []string{validate.CodeDANEValid},
			fingerSays: "Matched DANE TA certificate at depth 2: 2 0 0",
		},
		{
			name: "dane-ta 2 1 0 with the root not sent",
			cert: good, tlsa: records("2 1 0 " + hex.EncodeToString(pki.Root().RawSubjectPublicKeyInfo)),
			wantEligible: true, wantCodes: []string{validate.CodeDANEValid},
			fingerSays: "Matched DANE TA public key verified certificate at depth 1: 2 1 0",
		},
		{
			// RFC 7672 §3.1.2: the server must send a DANE-TA anchor that
			// the record only names by digest. Postfix refuses even with
			// the root in its CAfile (-F).
			name: "dane-ta 2 0 1 on the root, root not sent",
			cert: good, tlsa: records("2 0 1 " + sha(pki.Root().Raw, 1)),
			wantCodes:  []string{validate.CodeDANEMismatch},
			fingerSays: "CA certificate verification failed",
		},
		{
			// RFC 6698 §2.1.1, RFC 7671 §5.2.2: a DANE-TA record names an
			// issuer; OpenSSL, and so Postfix, does not take the leaf for
			// its own trust anchor.
			name: "dane-ta 2 1 1 on the leaf itself",
			cert: good, tlsa: leafKey(2, 1),
			wantCodes:  []string{validate.CodeDANEMismatch},
			fingerSays: "num=65:no matching DANE TLSA records",
		},
		{
			// RFC 7671 §9: the SHA2-512 record retires the SHA2-256 one.
			name: "digest agility: 3 1 1 matches, 3 1 2 does not",
			cert: good, tlsa: leafKey(3, 1, "3 1 2 "+zeros(64)),
			wantCodes:  []string{validate.CodeDANEMismatch},
			fingerSays: "num=65:no matching DANE TLSA records",
		},
		{
			name: "digest agility: 3 1 2 matches, stale 3 1 1",
			cert: good, tlsa: leafKey(3, 2, "3 1 1 "+zeros(32)),
			wantEligible: true, wantCodes: []string{validate.CodeDANEValid},
			fingerSays: "Matched DANE EE certificate at depth 0: 3 1 2",
		},
		{
			// RFC 7672 §3.1.3: PKIX-EE is unusable for SMTP; Postfix drops
			// it at look-up time and goes on without DANE.
			name: "only pkix-ee 1 1 1, trusted certificate",
			cert: good, tlsa: leafKey(1, 1),
			wantEligible: true, wantCodes: []string{validate.CodeDANEUnusable},
			fingerSays: "unsupported TLSA certificate usage: 1 1 1",
		},
		{
			name:       "only pkix-ee 1 1 1, self-signed certificate",
			cert:       func(h string) tls.Certificate { return pki.SelfSigned(h) },
			tlsa:       leafKey(1, 1),
			wantCodes:  []string{validate.CodeDANEUnusable, validate.CodeCertUntrusted},
			fingerSays: "unsupported TLSA certificate usage: 1 1 1",
		},
		{
			// Unusable records next to usable ones change nothing.
			name: "pkix-ee 1 1 1 matches, dane-ee 3 1 1 does not",
			cert: good, tlsa: leafKey(1, 1, "3 1 1 "+zeros(32)),
			wantCodes:  []string{validate.CodeDANEMismatch},
			fingerSays: "num=65:no matching DANE TLSA records",
		},
		{
			name: "dane-ee 3 1 1 matches next to an unusable 2 0 0",
			cert: good, tlsa: leafKey(3, 1, "2 0 0 0badc0de"),
			wantEligible: true, wantCodes: []string{validate.CodeDANEValid},
			fingerSays: "Matched DANE EE certificate at depth 0: 3 1 1",
		},
		{
			name: "only 2 0 0 that is not a certificate",
			cert: good, tlsa: records("2 0 0 0badc0de"),
			wantEligible: true, wantCodes: []string{validate.CodeDANEUnusable},
			fingerSays: "all TLSA records unusable, fallback to unauthenticated TLS",
		},
		{
			name: "only 3 1 1 with a 31-byte digest",
			cert: good, tlsa: records("3 1 1 " + zeros(31)),
			wantEligible: true, wantCodes: []string{validate.CodeDANEUnusable},
			fingerSays: "all TLSA records unusable, fallback to unauthenticated TLS",
		},
	}
	for i, tt := range tests {
		domain := fmt.Sprintf("dane%d.lab.test", i)
		host := "mx." + domain
		ip := fmt.Sprintf("%s%d", subnet, 100+i)
		c := tt.cert(host)
		lab.NewMX(t, ip+":25", lab.ModeGood, &c)
		dnsServer.Add(domain+". 300 IN MX 10 "+host+".", host+". 300 IN A "+ip)
		for _, r := range tt.tlsa(c) {
			dnsServer.Add("_25._tcp." + host + ". 300 IN TLSA " + r)
		}
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := v.Check(context.Background(), domain)
			if err != nil {
				t.Fatal(err)
			}
			codes := res.Codes()
			if !res.DNSSEC {
				t.Errorf("validator: DNSSEC = false on authenticated answers")
			}
			var daneCodes []string
			for _, c := range codes {
				if strings.HasPrefix(c, "dane.") {
					daneCodes = append(daneCodes, c)
				}
			}

			daneOut := runFinger(t, resolv, "dane", domain, host)
			secureOut := runFinger(t, resolv, "secure", domain, host)
			fingerDANE := fingerDANEVerdict(daneOut)
			secureOK := strings.Contains(secureOut, "Verified TLS connection established")
			fingerEligible := secureOK && fingerDANE != validate.CodeDANEMismatch

			if !slices.Equal(daneCodes, []string{fingerDANE}) {
				t.Errorf("DANE verdicts differ: validator %v, posttls-finger -l dane %q\n%s", daneCodes, fingerDANE, daneOut)
			}
			if res.Eligible != fingerEligible {
				t.Errorf("verdicts differ: validator eligible=%v (findings %v), posttls-finger secure verified=%v, dane %q\n-l dane:\n%s-l secure:\n%s",
					res.Eligible, codes, secureOK, fingerDANE, daneOut, secureOut)
			}
			if res.Eligible != tt.wantEligible {
				t.Errorf("validator eligible=%v, want %v (findings %v)", res.Eligible, tt.wantEligible, codes)
			}
			for _, want := range tt.wantCodes {
				if !slices.Contains(codes, want) {
					t.Errorf("validator findings %v, want %s", codes, want)
				}
			}
			if !strings.Contains(daneOut, tt.fingerSays) {
				t.Errorf("posttls-finger -l dane output lacks %q:\n%s", tt.fingerSays, daneOut)
			}
		})
	}
	// The control: the same kind of MX and a mismatching TLSA record, from a
	// DNS server that does not set the AD bit. Neither side may use the
	// TLSA records (RFC 7672 §2.2): the validator reports no dane.* code and
	// posttls-finger goes on without DANE ("secure"; smtp(8) would use "may").
	t.Run("unsigned answers: no DANE on either side", func(t *testing.T) {
		t.Parallel()
		res, err := newValidator(unsigned.Addr()).Check(context.Background(), "unsigned.lab.test")
		if err != nil {
			t.Fatal(err)
		}
		codes := res.Codes()
		if res.DNSSEC || !res.Eligible || slices.ContainsFunc(codes, func(c string) bool { return strings.HasPrefix(c, "dane.") }) {
			t.Errorf("validator on unsigned answers: DNSSEC=%v eligible=%v findings %v", res.DNSSEC, res.Eligible, codes)
		}
		out := runFinger(t, resolvUnsigned, "dane", "unsigned.lab.test", "mx.unsigned.lab.test")
		if strings.Contains(out, "DANE") || strings.Contains(out, "TLSA") || !strings.Contains(out, "Verified TLS connection established") {
			t.Errorf("posttls-finger -l dane used unsigned TLSA records:\n%s", out)
		}
	})
}

// fingerDANEVerdict reads the DANE verdict of posttls-finger -l dane as the
// validator's code; "" when the output fits none. Records of an unsupported
// usage are reported when they are dropped; they make the verdict
// dane.unusable only when no DANE matching was logged after them.
func fingerDANEVerdict(out string) string {
	verified := strings.Contains(out, "Verified TLS connection established")
	matched := strings.Contains(out, "Matched DANE")
	switch {
	case strings.Contains(out, "all TLSA records unusable"):
		// Usable usages, unusable data: Postfix goes on at "encrypt".
		return validate.CodeDANEUnusable
	case strings.Contains(out, "unsupported TLSA certificate usage") && !matched && !strings.Contains(out, "DANE TLSA"):
		// Every record dropped at look-up: Postfix goes on without DANE.
		return validate.CodeDANEUnusable
	case matched && verified:
		return validate.CodeDANEValid
	case !verified && (strings.Contains(out, "Untrusted TLS connection established") || strings.Contains(out, "verification failed")):
		return validate.CodeDANEMismatch
	}
	return ""
}
