package prcheck

import (
	"slices"
	"strings"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// Kind is what a pull request does to one domain.
type Kind string

// The kinds of change.
const (
	Added   Kind = "added"
	Changed Kind = "changed"
	Removed Kind = "removed"
)

// Change is one domain whose policy differs between the base and the head
// list. Old is the base policy (zero for Added), New the head policy (zero
// for Removed), both with aliases resolved.
type Change struct {
	Domain string
	Kind   Kind
	Old    listgen.Policy
	New    listgen.Policy
}

// Diff returns the domains whose resolved policy (mode and MX patterns)
// differs between base and head, sorted by name. A nil base is an empty
// list. Moving a domain to an alias with the same policy is no change.
func Diff(base, head *listgen.List) []Change {
	var out []Change
	if head != nil {
		for d := range head.Policies {
			np, _ := head.Resolve(d)
			op, ok := base.Resolve(d)
			if base == nil || !hasPolicy(base, d) {
				out = append(out, Change{Domain: d, Kind: Added, New: np})
				continue
			}
			if !ok || !samePolicy(op, np) {
				out = append(out, Change{Domain: d, Kind: Changed, Old: op, New: np})
			}
		}
	}
	if base != nil {
		for d := range base.Policies {
			if head == nil || !hasPolicy(head, d) {
				op, _ := base.Resolve(d)
				out = append(out, Change{Domain: d, Kind: Removed, Old: op})
			}
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Domain, b.Domain) })
	return out
}

func hasPolicy(l *listgen.List, d string) bool {
	_, ok := l.Policies[d]
	return ok
}

func samePolicy(a, b listgen.Policy) bool {
	if a.Mode != b.Mode || len(a.MXs) != len(b.MXs) {
		return false
	}
	x, y := slices.Clone(a.MXs), slices.Clone(b.MXs)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}
