package listgen

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// NameOptions says which names ParseDomain accepts beyond the registrable
// domains of the public DNS.
type NameOptions struct {
	// AllowTestTLD accepts names under the RFC 6761 §6.2 ".test" top-level
	// domain (for labs and tests; configuration key list.allow_test_tld).
	AllowTestTLD bool
}

// ErrInvalidName is what every *NameError unwraps to, for errors.Is.
var ErrInvalidName = errors.New("listgen: not a domain name the list accepts")

// Name refusal codes (NameError.Code). The codes shared with Lint's Problem
// codes mean the same thing. A code never changes meaning.
const (
	CodeDomainIPLiteral = "domain.ip_literal" // an IPv4 or IPv6 address, bracketed or not
	CodeDomainTooLong   = "domain.too_long"   // more than 253 bytes, or a label of more than 63
	// CodeDomainInvalid, CodeDomainIDNA, CodeDomainSuffix and
	// CodeDomainUnknownTLD (see lint.go) are also NameError codes.
)

// NameError is why ParseDomain refused a name.
type NameError struct {
	// Code is one of the domain.* codes: CodeDomainInvalid,
	// CodeDomainIDNA, CodeDomainIPLiteral, CodeDomainTooLong,
	// CodeDomainSuffix, CodeDomainUnknownTLD.
	Code string
	// Input is the string as given to ParseDomain, unchanged: it may be
	// long or hold control characters; Reason quotes it safely.
	Input string
	// Reason is one sentence (lower case, no final period) that names the
	// input, quoted and cut short, and says what is wrong with it.
	Reason string
}

func (e *NameError) Error() string { return "listgen: " + e.Reason }

// Unwrap returns ErrInvalidName.
func (e *NameError) Unwrap() error { return ErrInvalidName }

// maxNameInput bounds the input ParseDomain converts at all: an A-label
// name is at most 253 bytes, and no U-label form of one is four times as
// long.
const maxNameInput = 4 * 253

// ParseDomain is the one normaliser of domain names that people and
// programs submit (check, domains add, the list, the web and GitHub doors).
// It trims white space, removes one trailing dot, converts U-labels to
// A-labels (IDNA2008 lookup rules, UTS #46 mapping) and lower-cases, and
// returns the name in the list's form. It refuses, with a *NameError: an IP
// literal (v4 or v6, bracketed or not), a name that is not a host name
// (other characters, empty or hyphen-edged labels, one label, a port),
// one longer than 253 bytes or with a label longer than 63, a public suffix
// (ICANN or private, such as "co.uk" or "github.io"), and a name not under
// a known top-level domain — unless o.AllowTestTLD and the name is under
// RFC 6761 ".test".
//
// validate.NormalizeDomain (the checker, which may not import this package)
// accepts and rewrites every name exactly as the syntax part of ParseDomain
// does; a test runs both over one table.
func ParseDomain(s string, o NameOptions) (string, error) {
	name, err := parseHostName(s)
	if err != nil {
		return "", err
	}
	// RFC 6761 §6.2: ".test" is for testing; never in the public list.
	if o.AllowTestTLD && strings.HasSuffix(name, ".test") {
		return name, nil
	}
	suffix, icann := publicsuffix.PublicSuffix(name)
	switch {
	case suffix == name:
		return "", nameErr(CodeDomainSuffix, s, "is a public suffix, not a domain someone registers: give the domain itself, such as example.%s", name)
	case !icann && !strings.Contains(suffix, "."):
		// The public suffix list's default rule "*": the top-level domain is
		// not in the list.
		return "", nameErr(CodeDomainUnknownTLD, s, "is not under a known top-level domain (.%s)", suffix)
	}
	return name, nil
}

// parseHostName is ParseDomain's syntax part: normalisation and host-name
// syntax, without the public suffix list.
func parseHostName(s string) (string, error) {
	in := s
	s = strings.TrimSpace(s)
	if s == "" {
		return "", nameErr(CodeDomainInvalid, in, "is empty: give a domain name such as example.com")
	}
	if len(s) > maxNameInput {
		return "", nameErr(CodeDomainTooLong, in, "is longer than 253 bytes, the most a domain name can have")
	}
	if isIPLiteral(s) {
		return "", nameErr(CodeDomainIPLiteral, in, "is an IP address: give a domain name")
	}
	// RFC 1034 §3.1: one trailing dot makes the name absolute; no more.
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			continue // a U-label; IDNA below
		}
		// RFC 952/1123 host names: letters, digits, hyphens and dots.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", nameErr(CodeDomainInvalid, in, "contains %q: a domain name has only letters, digits, hyphens and dots", rune(c))
		}
	}
	a := strings.ToLower(s)
	if !isASCII(s) {
		// RFC 5891 §5: U-labels become A-labels. Hyphens are checked below,
		// on the A-label form, so that legacy ASCII labels such as
		// "r3--sn-abc" stay host names.
		var err error
		a, err = toASCII.ToASCII(s)
		if err != nil {
			return "", nameErr(CodeDomainIDNA, in, "is not a valid internationalised domain name (%v)", err)
		}
		a = strings.ToLower(a)
	}
	if err := checkLabels(in, a); err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(a, ".") {
		if !validALabel(l) {
			return "", nameErr(CodeDomainIDNA, in, "has a label %q that is not a valid IDNA A-label", l)
		}
	}
	return a, nil
}

// checkLabels checks the label structure of s (after the trailing dot is
// removed): at least two labels, none empty, none longer than 63 bytes,
// none starting or ending with a hyphen, at most 253 bytes, and a last
// label that is not all digits.
func checkLabels(in, s string) error {
	// RFC 1035 §2.3.4: 255 bytes on the wire is 253 in text.
	if len(s) > 253 {
		return nameErr(CodeDomainTooLong, in, "is longer than 253 bytes, the most a domain name can have")
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return nameErr(CodeDomainInvalid, in, "has one label: give a fully qualified domain name such as example.com")
	}
	for _, l := range labels {
		switch {
		case l == "":
			return nameErr(CodeDomainInvalid, in, "has an empty label (two dots in a row, or a leading dot)")
		case len(l) > 63:
			// RFC 1035 §2.3.4: labels are 63 octets or less.
			return nameErr(CodeDomainTooLong, in, "has a label longer than 63 bytes, the most a label can have")
		case l[0] == '-' || l[len(l)-1] == '-':
			// RFC 952, RFC 5891 §4.2.3.1.
			return nameErr(CodeDomainInvalid, in, "has a label that starts or ends with a hyphen")
		}
	}
	// RFC 3696 §2: a top-level domain is never all digits (so that no
	// IPv4 address or inet_aton form such as 127.1 passes as a name).
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" {
		return nameErr(CodeDomainUnknownTLD, in, "is not under a known top-level domain: none is all digits")
	}
	return nil
}

// toASCII converts U-labels as lookups do (UTS #46 mapping, IDNA2008 rules,
// non-transitional), leaving hyphens in ASCII labels to checkLabels.
var toASCII = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.CheckJoiners(true),
	idna.CheckHyphens(false), idna.Transitional(false))

// validALabel reports whether a label is not an "xn--" label or is the
// canonical A-label of a valid U-label (RFC 5890 §2.3.2.1, RFC 5891 §4.2.3.1:
// no leading, trailing or third-and-fourth-position hyphens in the U-label).
func validALabel(l string) bool {
	if !strings.HasPrefix(l, "xn--") {
		return true
	}
	u, err := idna.Lookup.ToUnicode(l)
	if err != nil || u == l {
		return false
	}
	back, err := idna.Lookup.ToASCII(u)
	return err == nil && back == l
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// isIPLiteral reports whether s is an IP address: dotted IPv4 (with or
// without a trailing dot), IPv6, with or without brackets and zone.
func isIPLiteral(s string) bool {
	t := s
	if inner, ok := strings.CutPrefix(s, "["); ok {
		// RFC 5321 §4.1.3: an address literal, "[192.0.2.1]" or "[IPv6:2001:db8::1]".
		t = strings.TrimSuffix(inner, "]")
		if len(t) > 5 && strings.EqualFold(t[:5], "IPv6:") {
			t = t[5:]
		}
	}
	t = strings.TrimSuffix(t, ".")
	if _, err := netip.ParseAddr(t); err == nil {
		return true
	}
	if _, err := netip.ParseAddrPort(s); err == nil {
		return true // "192.0.2.1:25", "[2001:db8::1]:25"
	}
	return false
}

// nameErr returns a *NameError whose reason starts with the quoted input,
// cut to a length a person reads.
func nameErr(code, in, format string, a ...any) *NameError {
	return &NameError{Code: code, Input: in, Reason: quoteName(in) + " " + fmt.Sprintf(format, a...)}
}

// quoteName quotes s for a message (Go syntax, so control characters are
// escaped), cut to about 80 bytes of quoted text.
func quoteName(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); {
		if b.Len() >= 80 {
			b.WriteString("\"…")
			return b.String()
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		q := strconv.Quote(s[i : i+size])
		b.WriteString(q[1 : len(q)-1])
		i += size
	}
	b.WriteByte('"')
	return b.String()
}
