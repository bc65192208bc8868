package listgen

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// nameCases is the hostile-input table for ParseDomain; want is the name
// returned or, when code is set, the NameError code.
var nameCases = []struct {
	in      string
	allowTT bool
	want    string
	code    string
}{
	{in: "example.com", want: "example.com"},
	{in: "Example.COM", want: "example.com"},
	{in: "  example.org\t", want: "example.org"},
	{in: "example.com.", want: "example.com"},
	{in: "example.com..", code: CodeDomainInvalid},
	{in: ".example.com", code: CodeDomainInvalid},
	{in: "mail.example.co.uk", want: "mail.example.co.uk"},
	{in: "bücher.de", want: "xn--bcher-kva.de"},
	{in: "BÜCHER.de.", want: "xn--bcher-kva.de"},
	{in: "ｅｘａｍｐｌｅ.com", want: "example.com"},
	{in: "xn--bcher-kva.de", want: "xn--bcher-kva.de"},
	{in: "XN--BCHER-KVA.DE", want: "xn--bcher-kva.de"},
	{in: "r3--sn-abc.example.com", want: "r3--sn-abc.example.com"},
	{in: "r3--sn-abc.bücher.de", want: "r3--sn-abc.xn--bcher-kva.de"},
	{in: "xn--zz.example.com", code: CodeDomainIDNA},
	{in: "bücher-.de", code: CodeDomainIDNA},
	{in: "\u00a0example.com\u00a0", want: "example.com"}, // Unicode white space is trimmed
	{in: "a\u00a0b.example.com", code: CodeDomainIDNA},
	{in: "a\u200bb.example.com", want: "ab.example.com"}, // UTS #46 maps U+200B to nothing
	// IP literals.
	{in: "192.0.2.1", code: CodeDomainIPLiteral},
	{in: "192.0.2.1.", code: CodeDomainIPLiteral},
	{in: "[192.0.2.1]", code: CodeDomainIPLiteral},
	{in: "192.0.2.1:25", code: CodeDomainIPLiteral},
	{in: "2001:db8::1", code: CodeDomainIPLiteral},
	{in: "[2001:db8::1]", code: CodeDomainIPLiteral},
	{in: "[IPv6:2001:db8::1]", code: CodeDomainIPLiteral},
	{in: "[2001:db8::1]:25", code: CodeDomainIPLiteral},
	{in: "fe80::1%eth0", code: CodeDomainIPLiteral},
	{in: "::ffff:192.0.2.1", code: CodeDomainIPLiteral},
	{in: "127.1", code: CodeDomainUnknownTLD},
	// Public suffixes and unknown top-level domains.
	{in: "com", code: CodeDomainInvalid},
	{in: "co.uk", code: CodeDomainSuffix},
	{in: "CO.UK.", code: CodeDomainSuffix},
	{in: "github.io", code: CodeDomainSuffix},
	{in: "example.123", code: CodeDomainUnknownTLD},
	{in: "foo.invalidtld", code: CodeDomainUnknownTLD},
	{in: "example.local", code: CodeDomainUnknownTLD},
	{in: "example.invalid", code: CodeDomainUnknownTLD},
	{in: "example.test", code: CodeDomainUnknownTLD},
	{in: "example.test", allowTT: true, want: "example.test"},
	{in: "Mail.Example.TEST.", allowTT: true, want: "mail.example.test"},
	{in: "example.123", allowTT: true, code: CodeDomainUnknownTLD},
	{in: "foo.invalidtld", allowTT: true, code: CodeDomainUnknownTLD},
	{in: "test", allowTT: true, code: CodeDomainInvalid},
	{in: "co.uk", allowTT: true, code: CodeDomainSuffix},
	{in: "example.com", allowTT: true, want: "example.com"},
	// Length.
	{in: strings.Repeat("a", 63) + ".com", want: strings.Repeat("a", 63) + ".com"},
	{in: strings.Repeat("a", 64) + ".com", code: CodeDomainTooLong},
	{in: strings.Repeat("abcdefghi.", 24) + "example.com", want: strings.Repeat("abcdefghi.", 24) + "example.com"}, // 251 bytes
	{in: strings.Repeat("abcdefghi.", 25) + "example.com", code: CodeDomainTooLong},                                // 261 bytes
	{in: strings.Repeat("a.", 1<<16) + "com", code: CodeDomainTooLong},
	{in: longULabel + ".de", code: CodeDomainTooLong}, // an A-label longer than 63 bytes
	// Not host names.
	{in: "", code: CodeDomainInvalid},
	{in: "   ", code: CodeDomainInvalid},
	{in: ".", code: CodeDomainInvalid},
	{in: "exa mple.com", code: CodeDomainInvalid},
	{in: "postmaster@example.com", code: CodeDomainInvalid},
	{in: "example.com/path", code: CodeDomainInvalid},
	{in: "https://example.com", code: CodeDomainInvalid},
	{in: "example.com:25", code: CodeDomainInvalid},
	{in: "_mta-sts.example.com", code: CodeDomainInvalid},
	{in: "*.example.com", code: CodeDomainInvalid},
	{in: "-a.example.com", code: CodeDomainInvalid},
	{in: "a-.example.com", code: CodeDomainInvalid},
	{in: "exa\x00mple.com", code: CodeDomainInvalid},
	{in: "example.com\r\nX: y", code: CodeDomainInvalid},
}

// longULabel is a U-label of 60 bytes whose A-label is longer than 63 bytes.
var longULabel = func() string {
	var b strings.Builder
	for i := range 20 {
		b.WriteRune(rune(0x4e00 + i*1009))
	}
	return b.String()
}()

func TestParseDomain(t *testing.T) {
	if a, _ := toASCII.ToASCII(longULabel); len(longULabel) > 63 || len(a) <= 63 {
		t.Fatalf("longULabel: %d bytes, A-label %q", len(longULabel), a)
	}
	for _, tt := range nameCases {
		got, err := ParseDomain(tt.in, NameOptions{AllowTestTLD: tt.allowTT})
		if tt.code == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseDomain(%q, %v) = %q, %v; want %q", tt.in, tt.allowTT, got, err, tt.want)
			}
			continue
		}
		var ne *NameError
		if !errors.As(err, &ne) {
			t.Errorf("ParseDomain(%q, %v) = %q, %v; want a *NameError %s", tt.in, tt.allowTT, got, err, tt.code)
			continue
		}
		if ne.Code != tt.code || ne.Input != tt.in || got != "" {
			t.Errorf("ParseDomain(%q, %v): code %s, input %q, name %q; want code %s", tt.in, tt.allowTT, ne.Code, ne.Input, got, tt.code)
		}
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("ParseDomain(%q): %v is not ErrInvalidName", tt.in, err)
		}
		msg := err.Error()
		if len(msg) > 300 || strings.ContainsAny(msg, "\x00\r\n") || !strings.HasPrefix(msg, "listgen: ") {
			t.Errorf("ParseDomain(%q): message %q is not one short line", tt.in, msg)
		}
	}
}

// TestParseDomainLintAgree: a name ParseDomain accepts lints clean, with
// the same option, and a domain that lints clean is one ParseDomain
// accepts as it is.
func TestParseDomainLintAgree(t *testing.T) {
	for _, tt := range nameCases {
		l := &List{Version: FormatVersion, Serial: 1, Author: "a", Timestamp: lintTS, Expires: lintTS.AddDate(0, 0, 1),
			Policies: map[string]Policy{tt.in: {Mode: ModeEnforce, MXs: []string{"mx.example.com"}}}, PolicyAliases: map[string]Policy{}}
		if ps := LintWith(l, LintOptions{AllowTestTLD: tt.allowTT}); len(ps) == 0 {
			if got, err := ParseDomain(tt.in, NameOptions{AllowTestTLD: tt.allowTT}); err != nil || got != tt.in {
				t.Errorf("%q lints clean, but ParseDomain = %q, %v", tt.in, got, err)
			}
		}
		got, err := ParseDomain(tt.in, NameOptions{AllowTestTLD: tt.allowTT})
		if err != nil {
			continue
		}
		l = &List{Version: FormatVersion, Serial: 1, Author: "a", Timestamp: lintTS, Expires: lintTS.AddDate(0, 0, 1),
			Policies: map[string]Policy{got: {Mode: ModeEnforce, MXs: []string{"mx.example.com"}}}, PolicyAliases: map[string]Policy{}}
		if ps := LintWith(l, LintOptions{AllowTestTLD: tt.allowTT}); len(ps) > 0 {
			t.Errorf("ParseDomain(%q) = %q, which lints with %v", tt.in, got, ps)
		}
	}
}

func FuzzParseDomain(f *testing.F) {
	for _, tt := range nameCases {
		f.Add(tt.in, tt.allowTT)
	}
	f.Fuzz(func(t *testing.T, s string, allow bool) {
		got, err := ParseDomain(s, NameOptions{AllowTestTLD: allow})
		if err != nil {
			var ne *NameError
			if !errors.As(err, &ne) || ne.Input != s || len(ne.Reason) > 300 {
				t.Fatalf("ParseDomain(%q): %#v", s, err)
			}
			return
		}
		// The list's form is a fixed point, and passes the list's checks.
		if again, err := ParseDomain(got, NameOptions{AllowTestTLD: allow}); err != nil || again != got {
			t.Fatalf("ParseDomain(%q) = %q, but ParseDomain(%q) = %q, %v", s, got, got, again, err)
		}
		if err := checkHostname(got); err != nil {
			t.Fatalf("ParseDomain(%q) = %q: %v", s, got, err)
		}
	})
}

var lintTS = time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)

func BenchmarkParseDomain(b *testing.B) {
	for _, in := range []string{"Mail.Example.co.uk.", "bücher.example.de", "co.uk"} {
		b.Run(in, func(b *testing.B) {
			for b.Loop() {
				ParseDomain(in, NameOptions{})
			}
		})
	}
}

func BenchmarkMatchesAny(b *testing.B) {
	p := Policy{MXs: []string{"mx1.example.com", "mx2.example.com", "*.mail.protection.example.net"}}
	for _, host := range []string{"a.mail.protection.example.net", "mx.bücher.example"} {
		b.Run(host, func(b *testing.B) {
			for b.Loop() {
				p.MatchesAny(host)
			}
		})
	}
}
