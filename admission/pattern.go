package admission

import "strings"

// normalizeHost lower-cases a host name and drops one trailing dot.
func normalizeHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// MatchPattern reports whether an MX host name matches an MX pattern as
// MTA-STS defines them.
func MatchPattern(pattern, host string) bool {
	p, h := normalizeHost(pattern), normalizeHost(host)
	if p == "" || h == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(p, "*."); ok {
		// RFC 8461 §4.1: "*" matches exactly one leftmost label: a
		// wildcard does not match the bare parent or two labels.
		label, parent, found := strings.Cut(h, ".")
		return found && label != "" && parent == rest
	}
	// RFC 8461 §4.1: otherwise the host name must equal the pattern.
	return h == p
}

// MatchAll reports whether every host matches at least one pattern, and
// returns the hosts that match none. An empty host set matches nothing: a
// domain without MX hosts cannot be admitted.
func MatchAll(patterns, hosts []string) (ok bool, unmatched []string) {
	if len(hosts) == 0 {
		return false, nil
	}
	for _, h := range hosts {
		matched := false
		for _, p := range patterns {
			if MatchPattern(p, h) {
				matched = true
				break
			}
		}
		if !matched {
			unmatched = append(unmatched, normalizeHost(h))
		}
	}
	return len(unmatched) == 0, unmatched
}

// ValidPattern reports whether s is an acceptable MX pattern: a host name
// with at least two labels, or "*." followed by one.
func ValidPattern(s string) bool {
	p := normalizeHost(s)
	p = strings.TrimPrefix(p, "*.")
	if !strings.Contains(p, ".") || len(p) > 253 {
		return false
	}
	for _, label := range strings.Split(p, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_'
			if !ok {
				return false
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
	}
	return true
}

// normalizePatterns lower-cases, trims and de-duplicates patterns, keeping
// their order.
func normalizePatterns(in []string) []string {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, p := range in {
		p = normalizeHost(p)
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

func samePatterns(a, b []string) bool {
	a, b = normalizePatterns(a), normalizePatterns(b)
	if len(a) != len(b) {
		return false
	}
	set := make(map[string]bool, len(a))
	for _, p := range a {
		set[p] = true
	}
	for _, p := range b {
		if !set[p] {
			return false
		}
	}
	return true
}
