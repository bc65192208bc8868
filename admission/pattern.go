package admission

import (
	"errors"
	"fmt"
	"strings"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// ErrInvalid is returned for a value an operator or owner must correct.
var ErrInvalid = errors.New("admission: invalid value")

// normalizeHost lower-cases a host name and drops one trailing dot.
func normalizeHost(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// MatchPattern reports whether an MX host name matches an MX pattern as
// MTA-STS defines them (RFC 8461 §4.1: "*" matches exactly one leftmost
// label), the list's own rule.
func MatchPattern(pattern, host string) bool {
	if normalizeHost(pattern) == "" || normalizeHost(host) == "" {
		return false
	}
	return listgen.Matches(pattern, host)
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

// NormalizePatterns converts declared MX patterns to the list's form
// ("*.example.com", a leading "." read as "*."), refusing any that is not a
// host name or a one-label wildcard over one.
func NormalizePatterns(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, p := range in {
		n, err := listgen.NormalizePattern(p)
		if err != nil {
			return nil, fmt.Errorf("%w: MX pattern %v", ErrInvalid, err)
		}
		out = append(out, n)
	}
	out = normalizePatterns(out)
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: at least one MX pattern is needed", ErrInvalid)
	}
	return out, nil
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
