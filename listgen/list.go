package listgen

import (
	"errors"
	"strings"
	"time"
)

// FormatVersion is the value of the "version" field of lists in this format.
const FormatVersion = "1"

// Policy modes.
const (
	// ModeTesting: senders report failures but still deliver.
	ModeTesting = "testing"
	// ModeEnforce: senders refuse to deliver without TLS to a matching MX.
	ModeEnforce = "enforce"
)

// Bounds that Parse enforces on untrusted input.
const (
	// MaxSize is the largest list Parse reads (256 MiB; a list of one
	// million domains is about 150 MB).
	MaxSize = 256 << 20
	// MaxMXs is the largest number of MX patterns in one policy.
	MaxMXs = 64
	// MaxAuthor is the longest author string, in bytes.
	MaxAuthor = 1024
	// MaxAliasName is the longest alias name, in bytes.
	MaxAliasName = 63
)

// Errors. Parse errors wrap ErrInvalid (or are ErrTooLarge); signature
// failures are ErrBadSignature.
var (
	ErrTooLarge     = errors.New("listgen: list too large")
	ErrInvalid      = errors.New("listgen: invalid list")
	ErrBadSignature = errors.New("listgen: signature does not verify")
	ErrBadKey       = errors.New("listgen: unsupported or malformed key")
)

// List is a STARTTLS policy list. The package documentation specifies its
// serialisation.
type List struct {
	Version       string            `json:"version"`
	Serial        int64             `json:"serial"`
	Timestamp     time.Time         `json:"timestamp"`
	Expires       time.Time         `json:"expires"`
	Author        string            `json:"author"`
	PolicyAliases map[string]Policy `json:"policy-aliases"`
	Policies      map[string]Policy `json:"policies"`
}

// Policy is the policy of one mail domain: either Mode and MXs, or
// PolicyAlias naming an entry of List.PolicyAliases.
type Policy struct {
	Mode        string   `json:"mode,omitempty"`
	MXs         []string `json:"mxs,omitempty"`
	PolicyAlias string   `json:"policy-alias,omitempty"`
}

// Resolve returns the policy of a mail domain, with an alias resolved (the
// returned Policy then has Mode and MXs and an empty PolicyAlias). The
// domain is matched exactly, after lower-casing and removing one trailing
// dot; it reports false when the domain has no policy or its alias is
// undefined.
func (l *List) Resolve(domain string) (Policy, bool) {
	if l == nil {
		return Policy{}, false
	}
	d := strings.TrimSuffix(strings.ToLower(domain), ".")
	p, ok := l.Policies[d]
	if !ok {
		return Policy{}, false
	}
	if p.PolicyAlias == "" {
		return p, true
	}
	a, ok := l.PolicyAliases[p.PolicyAlias]
	if !ok || a.PolicyAlias != "" {
		return Policy{}, false
	}
	return a, true
}

// Matches reports whether the MX host name matches pattern (see the package
// documentation: an exact name, or "*.suffix" matching one more label).
// Both are compared as A-labels (a U-label is converted first, and one that
// is not valid IDNA matches nothing), case-insensitively and without a
// trailing dot.
func Matches(pattern, host string) bool {
	h, ok := matchForm(host)
	return ok && matchesForm(pattern, h)
}

// MatchesAny reports whether host matches one of the policy's patterns.
func (p Policy) MatchesAny(host string) bool {
	h, ok := matchForm(host)
	if !ok {
		return false
	}
	for _, m := range p.MXs {
		if matchesForm(m, h) {
			return true
		}
	}
	return false
}
