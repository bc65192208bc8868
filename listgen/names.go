package listgen

import (
	"errors"
	"fmt"
	"strings"
)

// checkHostname reports why s is not a host name in the list's form:
// lower-case LDH labels of 1 to 63 bytes, neither starting nor ending with
// a hyphen, at least two labels, at most 253 bytes, no trailing dot, and a
// last label that is not all digits (so that no IPv4 address passes).
// It checks syntax only; Lint also checks that A-labels are valid IDNA.
func checkHostname(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 253 {
		return errors.New("name longer than 253 bytes")
	}
	labels := 0
	start := 0
	allDigits := true
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			c := s[i]
			switch {
			case c >= 'a' && c <= 'z':
				allDigits = false
			case c >= '0' && c <= '9':
			case c == '-':
				allDigits = false
			case c >= 'A' && c <= 'Z':
				return fmt.Errorf("%q is not lower-case", s)
			default:
				return fmt.Errorf("%q contains %q: only letters, digits, hyphens and dots are allowed", s, rune(c))
			}
			continue
		}
		label := s[start:i]
		switch {
		case label == "":
			return fmt.Errorf("%q has an empty label", s)
		case len(label) > 63:
			return fmt.Errorf("%q has a label longer than 63 bytes", s)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("%q has a label that starts or ends with a hyphen", s)
		}
		labels++
		if i < len(s) {
			allDigits = true
		}
		start = i + 1
	}
	if labels < 2 {
		return fmt.Errorf("%q is not a fully qualified name (one label)", s)
	}
	if allDigits {
		return fmt.Errorf("%q ends in an all-digit label", s)
	}
	return nil
}

// checkPattern reports why s is not an MX pattern: a host name, or "*."
// followed by a host name.
func checkPattern(s string) error {
	if suffix, ok := strings.CutPrefix(s, "*."); ok {
		return checkHostname(suffix)
	}
	if strings.Contains(s, "*") {
		return fmt.Errorf("%q: a wildcard is allowed only as the whole leftmost label (\"*.example.com\")", s)
	}
	return checkHostname(s)
}

// checkAliasName reports why s is not an alias name: 1 to 63 bytes of
// lower-case letters, digits, '.', '_' and '-', starting with a letter or digit.
func checkAliasName(s string) error {
	if s == "" || len(s) > MaxAliasName {
		return fmt.Errorf("alias name must be 1 to %d bytes", MaxAliasName)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '.' || c == '_' || c == '-')
		if !ok {
			return fmt.Errorf("alias name %q: only lower-case letters, digits, '.', '_' and '-' are allowed, starting with a letter or digit", s)
		}
	}
	return nil
}

// NormalizeName converts a host name as people write it (any case,
// U-labels, one trailing dot) to the list's form: lower-case A-labels
// without a trailing dot. It is the syntax part of ParseDomain (errors are
// *NameError), without the public suffix list: for MX host names and
// patterns. Domains that people submit go through ParseDomain.
func NormalizeName(s string) (string, error) { return parseHostName(s) }

// NormalizePattern converts an MX pattern to the list's form. A leading
// "." (the EFF list's suffix form) is read as "*.": both match one more
// leftmost label.
func NormalizePattern(s string) (string, error) {
	s = strings.TrimSpace(s)
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		n, err := NormalizeName(rest)
		if err != nil {
			return "", err
		}
		return "*." + n, nil
	}
	if rest, ok := strings.CutPrefix(s, "."); ok {
		n, err := NormalizeName(rest)
		if err != nil {
			return "", err
		}
		return "*." + n, nil
	}
	return NormalizeName(s)
}

// checkIDNA reports whether a syntactically valid name is also valid IDNA:
// every "xn--" label the canonical A-label of a valid U-label. Other labels
// are left alone (legacy host names such as "r3--sn-abc" stay valid).
func checkIDNA(s string) error {
	for l := range strings.SplitSeq(s, ".") {
		if !validALabel(l) {
			return fmt.Errorf("%q is not a valid IDNA name: %q is not a valid A-label", s, l)
		}
	}
	return nil
}

// matchForm returns a host name in the form Matches compares: lower-case
// A-labels without a trailing dot. ok is false when a U-label is not valid
// IDNA. ASCII names are only lower-cased, whatever they hold.
func matchForm(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	if isASCII(name) {
		return strings.ToLower(name), true
	}
	// RFC 8461 §3.2: patterns name A-labels, not U-labels; a U-label is
	// converted (RFC 5891 §5) before it is compared.
	a, err := toASCII.ToASCII(name)
	if err != nil {
		return "", false
	}
	return strings.ToLower(a), true
}

// matchesForm matches pattern against a host already in matchForm.
func matchesForm(pattern, host string) bool {
	if host == "" {
		return false
	}
	suffix, wild := strings.CutPrefix(pattern, "*.")
	suffix, ok := matchForm(suffix)
	if !ok || suffix == "" {
		return false
	}
	if wild {
		// RFC 8461 §4.1: "*" matches exactly one leftmost label.
		label, rest, found := strings.Cut(host, ".")
		return found && label != "" && rest == suffix
	}
	return host == suffix
}
