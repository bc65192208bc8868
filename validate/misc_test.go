package validate

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestCodesDocumented keeps doc.go and the code table in step.
func TestCodesDocumented(t *testing.T) {
	doc := readFile(t, "doc.go")
	for _, c := range AllCodes() {
		if !strings.Contains(doc, "//\t"+c.Code+" ") {
			t.Errorf("code %s is not documented in doc.go", c.Code)
		}
		if !strings.Contains(doc, "["+string(c.Severity)+"]") {
			t.Errorf("severity %s missing", c.Severity)
		}
	}
	for _, want := range []string{"dns.nxdomain", "dns.lookup_failed", "dns.null_mx", "dns.implicit_mx", "dns.no_address",
		"mx.private_address", "mx.connect_failed", "mx.timeout", "smtp.bad_response", "starttls.not_offered",
		"starttls.command_failed", "tls.handshake_failed", "tls.version_too_old", "cert.untrusted", "cert.expired",
		"cert.hostname_mismatch", "cert.expiring_soon"} {
		if _, ok := codes[want]; !ok {
			t.Errorf("required code %s missing", want)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	tests := map[string]string{
		"Example.COM.": "example.com", " example.org ": "example.org", "bücher.example": "xn--bcher-kva.example",
		"": "", "nodot": "", "a b.com": "", "user@example.com": "", "[1.2.3.4]": "",
		// As listgen.ParseDomain's syntax part: no all-digit top-level
		// label, no IP literal, no underscore, no over-long label.
		"example.123": "", "192.0.2.1": "", "192.0.2.1.": "", "2001:db8::1": "", "127.1": "",
		"_mta-sts.example.com": "", strings.Repeat("a", 64) + ".com": "", "xn--zz.example.com": "",
		"r3--sn-abc.example.com": "r3--sn-abc.example.com", "mail.example.test": "mail.example.test",
	}
	for in, want := range tests {
		got, err := NormalizeDomain(in)
		if (err != nil) != (want == "") || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTLSRPTResultType(t *testing.T) {
	for code := range tlsrptResults {
		if _, ok := codes[code]; !ok {
			t.Errorf("unknown code %s", code)
		}
	}
	if got := TLSRPTResultType(CodeCertExpired); got != "certificate-expired" {
		t.Errorf("cert.expired -> %q", got)
	}
	if got := TLSRPTResultType(CodeDNSNXDomain); got != "" {
		t.Errorf("dns.nxdomain -> %q, want none", got)
	}
}

func TestValidHELO(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"mx.example.net", true},
		{"checker", true},
		{"Checker-1.Example.NET", true},
		{"[192.0.2.1]", true},
		{"[IPv6:2001:db8::1]", true},
		{"", false},
		{"a b.example", false},
		{"mx.example.net\r\nRCPT TO:<x>", false},
		{"mx..example", false},
		{"mx.example.", false},
		{"-mx.example", false},
		{"mx_1.example", false},
		{"[192.0.2.1", false},
		{"[2001:db8::1]", false},
		{"[IPv6:192.0.2.1]", false},
		{"[IPv6:::ffff:192.0.2.1]", true},
		{"[IPv6:fe80::1%eth0]", false},
		{"[300.1.1.1]", false},
		{strings.Repeat("a", 64) + ".example", false},
	} {
		if got := validHELO(tt.name); got != tt.ok {
			t.Errorf("validHELO(%q) = %v, want %v", tt.name, got, tt.ok)
		}
	}
	if _, err := New(Config{Resolver: "127.0.0.1:53", HELOName: "bad name"}); !errors.Is(err, ErrConfig) {
		t.Errorf("New with a bad HELO name: err = %v, want ErrConfig", err)
	}
}
