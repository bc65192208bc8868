package validate

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// ErrInvalidDomain is returned for a name that is not a domain.
var ErrInvalidDomain = errors.New("validate: invalid domain name")

// NormalizeDomain returns domain in the form results use: lower-case
// A-labels without a trailing dot.
//
// It is the checker's copy of the syntax part of listgen.ParseDomain (this
// package imports no other package of the project): it trims white space,
// removes one trailing dot, converts U-labels to A-labels and lower-cases,
// and refuses exactly the names that part refuses — IP literals, names that
// are not host names, names longer than 253 bytes or with a label longer
// than 63, invalid IDNA, and an all-digit top-level label ("example.123").
// It does not consult the public suffix list: the checker also checks lab
// names. The doors (check, domains add, the list, the web and GitHub doors)
// use listgen.ParseDomain; a test in cmd/starttls-preload runs both over one
// table so that they cannot drift.
func NormalizeDomain(domain string) (string, error) {
	in := domain
	s := strings.TrimSpace(domain)
	if s == "" {
		return "", invalidDomain(in, "is empty")
	}
	if len(s) > maxNameInput {
		return "", invalidDomain(in, "is longer than 253 bytes")
	}
	if isIPLiteral(s) {
		return "", invalidDomain(in, "is an IP address")
	}
	// RFC 1034 §3.1: one trailing dot makes the name absolute; no more.
	s = strings.TrimSuffix(s, ".")
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			ascii = false
			continue
		}
		// RFC 952/1123 host names: letters, digits, hyphens and dots.
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return "", invalidDomain(in, fmt.Sprintf("contains %q", rune(c)))
		}
	}
	a := strings.ToLower(s)
	if !ascii {
		// RFC 5891 §5: U-labels become A-labels.
		var err error
		if a, err = toASCII.ToASCII(s); err != nil {
			return "", invalidDomain(in, fmt.Sprintf("is not valid IDNA (%v)", err))
		}
		a = strings.ToLower(a)
	}
	if reason := checkLabels(a); reason != "" {
		return "", invalidDomain(in, reason)
	}
	for l := range strings.SplitSeq(a, ".") {
		if !validALabel(l) {
			return "", invalidDomain(in, fmt.Sprintf("has a label %q that is not a valid A-label", l))
		}
	}
	return a, nil
}

// maxNameInput bounds the input NormalizeDomain converts at all.
const maxNameInput = 4 * 253

func invalidDomain(in, reason string) error {
	return fmt.Errorf("%w: %s %s", ErrInvalidDomain, quoteName(in), reason)
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

// checkLabels returns why s is not a host name in the list's form, or "":
// two labels or more, none empty, none longer than 63 bytes, none starting
// or ending with a hyphen, at most 253 bytes, a last label not all digits.
func checkLabels(s string) string {
	// RFC 1035 §2.3.4: 255 bytes on the wire is 253 in text.
	if len(s) > 253 {
		return "is longer than 253 bytes"
	}
	labels := strings.Split(s, ".")
	if len(labels) < 2 {
		return "has one label"
	}
	for _, l := range labels {
		switch {
		case l == "":
			return "has an empty label"
		case len(l) > 63:
			// RFC 1035 §2.3.4: labels are 63 octets or less.
			return "has a label longer than 63 bytes"
		case l[0] == '-' || l[len(l)-1] == '-':
			return "has a label that starts or ends with a hyphen"
		}
	}
	// RFC 3696 §2: a top-level domain is never all digits.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "ends in an all-digit label"
	}
	return ""
}

// toASCII converts U-labels as lookups do (UTS #46 mapping, IDNA2008 rules,
// non-transitional), leaving hyphens in ASCII labels to checkLabels.
var toASCII = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.CheckJoiners(true),
	idna.CheckHyphens(false), idna.Transitional(false))

// validALabel reports whether a label is not an "xn--" label or is the
// canonical A-label of a valid U-label (RFC 5891 §4.2.3.1).
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

// isIPLiteral reports whether s is an IP address: dotted IPv4 (with or
// without a trailing dot), IPv6, with or without brackets, zone or port.
func isIPLiteral(s string) bool {
	t := s
	if inner, ok := strings.CutPrefix(s, "["); ok {
		// RFC 5321 §4.1.3: "[192.0.2.1]" or "[IPv6:2001:db8::1]".
		t = strings.TrimSuffix(inner, "]")
		if len(t) > 5 && strings.EqualFold(t[:5], "IPv6:") {
			t = t[5:]
		}
	}
	t = strings.TrimSuffix(t, ".")
	if _, err := netip.ParseAddr(t); err == nil {
		return true
	}
	_, err := netip.ParseAddrPort(s)
	return err == nil
}
