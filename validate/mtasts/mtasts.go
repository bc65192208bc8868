// Package mtasts implements the parts of SMTP MTA Strict Transport Security
// (MTA-STS, RFC 8461) that a checker needs: parsing the "_mta-sts" TXT
// record (§3.1), fetching (§3.3) and parsing (§3.2) the policy, and matching
// MX host names against the policy's "mx" patterns (§4.1).
//
// The package is pure protocol code: it does no DNS look-ups and keeps no
// cache. Callers look up the TXT record themselves, pass its strings to
// SelectRecord, and give Fetch the HTTP client to use.
//
// Every error is, or wraps, one of the sentinel errors below, so that callers
// can map them to stable finding codes with errors.Is.
package mtasts

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/net/idna"

	"github.com/starttls-preload/starttls-preload/validate/internal/txtrecord"
)

// Sentinel errors. Each error returned by this package wraps exactly one of
// them (Fetch errors may wrap a cause as well).
var (
	// ErrNoRecord: no TXT string starts with "v=STSv1"; the domain does not
	// use MTA-STS.
	ErrNoRecord = errors.New("mtasts: no MTA-STS record")
	// ErrMultipleRecords: more than one MTA-STS record; RFC 8461 §3.1 says
	// senders then treat the domain as not implementing MTA-STS.
	ErrMultipleRecords = errors.New("mtasts: more than one MTA-STS record")
	// ErrRecordSyntax: the TXT record does not follow RFC 8461 §3.1.
	ErrRecordSyntax = errors.New("mtasts: invalid MTA-STS record")
	// ErrPolicySyntax: the policy does not follow RFC 8461 §3.2.
	ErrPolicySyntax = errors.New("mtasts: invalid MTA-STS policy")

	// ErrFetch: the policy could not be fetched (DNS, connection, timeout,
	// HTTP protocol error).
	ErrFetch = errors.New("mtasts: policy fetch failed")
	// ErrCertificate: the policy host's certificate is not valid for
	// "mta-sts.<domain>" (RFC 8461 §3.3 requires a valid PKIX certificate).
	ErrCertificate = errors.New("mtasts: policy host certificate not valid")
	// ErrRedirect: the policy host answered with a redirect, which RFC 8461
	// §3.3 forbids following.
	ErrRedirect = errors.New("mtasts: policy fetch redirected")
	// ErrHTTPStatus: the policy host answered with a status other than 200.
	ErrHTTPStatus = errors.New("mtasts: policy fetch status not 200")
	// ErrContentType: the policy is not served as text/plain (RFC 8461 §3.3).
	ErrContentType = errors.New("mtasts: policy content type not text/plain")
	// ErrTooLarge: the policy is larger than MaxPolicySize.
	ErrTooLarge = errors.New("mtasts: policy larger than 64 KiB")
)

// recordGrammar: RFC 8461 §3.1 "records that do not begin with "v=STSv1;"
// are discarded" (when only near misses such as a bare "v=STSv1" are
// published, Select reports the first as malformed rather than absent); the
// version comes first, exactly "v=STSv1" (case-sensitive, %s); no field
// holds white space.
var recordGrammar = txtrecord.Grammar{
	Version:  "v=STSv1",
	NoWSP:    true,
	NoRecord: ErrNoRecord,
	Multiple: ErrMultipleRecords,
	Syntax:   ErrRecordSyntax,
}

// MaxPolicySize is the largest policy body accepted, in bytes: it bounds
// what a stranger's server can make the checker read (64 KiB is the usual
// limit of MTA-STS implementations).
const MaxPolicySize = 64 << 10

// MaxMaxAge is the largest max_age allowed by RFC 8461 §3.2 (about a year).
const MaxMaxAge = 31557600

// Record is a parsed "_mta-sts" TXT record.
type Record struct {
	// ID identifies the current policy; it changes whenever the policy does.
	ID string
	// Extensions holds unknown fields in order, as the RFC says to ignore
	// them; kept for display only.
	Extensions []Pair
	// Duplicates names the known fields ("v", "id") given more than once,
	// each once, in the order their second entry came: RFC 8461 §3.2 says
	// all entries but the first are ignored, and so they are; an owner
	// should still be told.
	Duplicates []string
}

// Pair is one extension field of a record or policy.
type Pair struct{ Key, Value string }

// Mode is a policy mode (RFC 8461 §5).
type Mode string

// Policy modes.
const (
	ModeEnforce Mode = "enforce"
	ModeTesting Mode = "testing"
	ModeNone    Mode = "none"
)

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Version string // always "STSv1"
	Mode    Mode
	// MX holds the "mx" patterns in order, lower case, as written:
	// "mail.example.com" or "*.example.com".
	MX []string
	// MaxAge is the policy lifetime in seconds, 0..MaxMaxAge.
	MaxAge int64
	// Extensions holds unknown fields in order (RFC 8461 §3.2 says to ignore
	// them).
	Extensions []Pair
	// Duplicates names the non-repeatable fields ("version", "mode",
	// "max_age") given more than once, each once, in the order their second
	// entry came; all entries but the first were ignored (RFC 8461 §3.2).
	Duplicates []string
}

// SelectRecord picks the MTA-STS record among the strings of a TXT RRset
// (each string being one record, its character-strings already joined).
// RFC 8461 §3.1: records that do not begin with "v=STSv1;" are discarded
// before counting; if none is left the result is ErrNoRecord (or
// ErrRecordSyntax when a near miss such as "v=STSv1" alone was published),
// if more than one is left it is ErrMultipleRecords, and the one left is
// parsed with ParseRecord.
func SelectRecord(txts []string) (*Record, error) {
	return txtrecord.SelectParse(recordGrammar, txts, ParseRecord)
}

// ParseRecord parses one "_mta-sts" TXT record strictly per RFC 8461 §3.1:
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-field-delim = *WSP ";" *WSP
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
func ParseRecord(txt string) (*Record, error) {
	r := &Record{}
	haveID := false
	seen := map[string]bool{"v": true}
	err := recordGrammar.Parse(txt, func(k, v string) error {
		// RFC 8461 §3.1: values exclude "=", ";", SP and control characters.
		if !txtrecord.ValidExtValue(v) {
			return fmt.Errorf("%w: bad value for %q", ErrRecordSyntax, k)
		}
		switch k {
		case "id", "v":
			if seen[k] {
				// RFC 8461 §3.2 (for records and policies): "If any
				// non-repeated field ... is duplicated, all entries except
				// for the first SHALL be ignored."
				if !slices.Contains(r.Duplicates, k) {
					r.Duplicates = append(r.Duplicates, k)
				}
				return nil
			}
			seen[k] = true
			// RFC 8461 §3.1: id is 1 to 32 letters or digits.
			if len(v) > 32 || !isAlnum(v) {
				return fmt.Errorf("%w: id %q must be 1 to 32 letters or digits", ErrRecordSyntax, v)
			}
			r.ID, haveID = v, true
		default:
			// RFC 8461 §3.1: unknown fields (sts-extension) are ignored.
			r.Extensions = append(r.Extensions, Pair{k, v})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !haveID {
		return nil, fmt.Errorf("%w: no \"id\" field", ErrRecordSyntax)
	}
	return r, nil
}

// ParsePolicy parses a policy body strictly per RFC 8461 §3.2. Lines end in
// LF or CRLF; each is "key: value". version, mode and max_age are required;
// when one is given more than once, the first is used and the others are
// ignored (their values need only be field values), and Duplicates names
// it. mx is required at least once unless mode is none; unknown keys are
// ignored. The body must not exceed MaxPolicySize.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicySize {
		return nil, ErrTooLarge
	}
	s := string(b)
	// RFC 8461 §3.2: sts-policy-term = LF / CRLF, optional after the last field.
	s = strings.TrimSuffix(s, "\n")
	s = strings.TrimSuffix(s, "\r")
	if s == "" {
		return nil, fmt.Errorf("%w: empty policy", ErrPolicySyntax)
	}
	p := &Policy{}
	// have holds the non-repeatable fields seen.
	have := map[string]bool{}
	for n, line := range strings.Split(s, "\n") {
		n++
		line = strings.TrimSuffix(line, "\r")
		if strings.ContainsRune(line, '\r') {
			return nil, fmt.Errorf("%w: line %d: stray CR", ErrPolicySyntax, n)
		}
		// RFC 8461 §3.2: sts-policy-field *WSP: trailing white space is allowed.
		line = strings.TrimRight(line, " \t")
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("%w: line %d: no \":\"", ErrPolicySyntax, n)
		}
		// RFC 8461 §3.2: sts-policy-field-delim = ":" *WSP.
		v = strings.TrimLeft(v, " \t")
		switch k {
		case "version", "mode", "max_age":
			if have[k] {
				// RFC 8461 §3.2: "If any non-repeated field -- i.e., all
				// fields excepting "mx" -- is duplicated, all entries except
				// for the first SHALL be ignored." An ignored entry still
				// has to be a field: a value of visible characters.
				if !validPolicyExtValue(v) {
					return nil, fmt.Errorf("%w: line %d: bad value for %q", ErrPolicySyntax, n, k)
				}
				if !slices.Contains(p.Duplicates, k) {
					p.Duplicates = append(p.Duplicates, k)
				}
				continue
			}
			have[k] = true
		}
		switch k {
		case "version":
			// RFC 8461 §3.2: sts-policy-version-value = %s"STSv1".
			if v != "STSv1" {
				return nil, fmt.Errorf("%w: line %d: version %q is not STSv1", ErrPolicySyntax, n, v)
			}
			p.Version = v
		case "mode":
			switch Mode(v) {
			case ModeEnforce, ModeTesting, ModeNone:
			default:
				return nil, fmt.Errorf("%w: line %d: mode %q is not enforce, testing or none", ErrPolicySyntax, n, v)
			}
			p.Mode = Mode(v)
		case "max_age":
			// RFC 8461 §3.2: sts-policy-max-age-value = 1*10(DIGIT), at most 31557600.
			if len(v) == 0 || len(v) > 10 || !isDigits(v) {
				return nil, fmt.Errorf("%w: line %d: max_age %q is not 1 to 10 digits", ErrPolicySyntax, n, v)
			}
			age, _ := strconv.ParseInt(v, 10, 64)
			if age > MaxMaxAge {
				return nil, fmt.Errorf("%w: line %d: max_age %d exceeds %d", ErrPolicySyntax, n, age, MaxMaxAge)
			}
			p.MaxAge = age
		case "mx":
			// RFC 8461 §3.2: sts-policy-mx-value = ["*."] Domain.
			pat := strings.ToLower(v)
			if !validMXPattern(pat) {
				return nil, fmt.Errorf("%w: line %d: mx %q is not a host name or \"*.\" pattern", ErrPolicySyntax, n, v)
			}
			p.MX = append(p.MX, pat)
		default:
			// RFC 8461 §3.2: sts-policy-ext-name, then a value of visible
			// characters (UTF-8 allowed), no CTLs and no trailing space.
			if !txtrecord.ValidExtName(k) {
				return nil, fmt.Errorf("%w: line %d: bad key %q", ErrPolicySyntax, n, k)
			}
			if !validPolicyExtValue(v) {
				return nil, fmt.Errorf("%w: line %d: bad value for %q", ErrPolicySyntax, n, k)
			}
			// RFC 8461 §3.2: "Unknown fields MUST be ignored".
			p.Extensions = append(p.Extensions, Pair{k, v})
		}
	}
	switch {
	case !have["version"]:
		return nil, fmt.Errorf("%w: no version field", ErrPolicySyntax)
	case !have["mode"]:
		return nil, fmt.Errorf("%w: no mode field", ErrPolicySyntax)
	case !have["max_age"]:
		return nil, fmt.Errorf("%w: no max_age field", ErrPolicySyntax)
	case len(p.MX) == 0 && p.Mode != ModeNone:
		// RFC 8461 §3.2: mx is required at least once, except when mode is none.
		return nil, fmt.Errorf("%w: no mx field (required unless mode is none)", ErrPolicySyntax)
	}
	return p, nil
}

// Match reports whether the MX host name host matches one of the policy's
// mx patterns (RFC 8461 §4.1). Names are compared as A-labels, ignoring
// case and a trailing dot.
func (p *Policy) Match(host string) bool {
	host, ok := aLabels(host)
	if !ok || host == "" {
		return false
	}
	for _, pat := range p.MX {
		if matchALabels(pat, host) {
			return true
		}
	}
	return false
}

// MatchPattern reports whether host matches one mx pattern (RFC 8461 §4.1).
// Both are compared as A-labels: a U-label host (or pattern) is converted
// first, so "mx.bücher.example" matches "*.xn--bcher-kva.example". A name
// that is not valid IDNA matches nothing.
func MatchPattern(pattern, host string) bool {
	host, ok := aLabels(host)
	return ok && host != "" && matchALabels(pattern, host)
}

// matchALabels matches a pattern against a host already in A-labels.
func matchALabels(pattern, host string) bool {
	wild := false
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		pattern, wild = rest, true
	}
	pattern, ok := aLabels(pattern)
	if !ok || pattern == "" {
		return false
	}
	if wild {
		// RFC 8461 §4.1: "*" matches exactly one leftmost label:
		// "*.example.com" matches "mx.example.com", not "a.b.example.com"
		// nor "example.com".
		label, parent, ok := strings.Cut(host, ".")
		return ok && label != "" && parent == pattern
	}
	// RFC 8461 §4.1: otherwise the names must be identical.
	return pattern == host
}

// toASCII converts U-labels as lookups do (UTS #46 mapping, IDNA2008,
// non-transitional).
var toASCII = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.CheckJoiners(true),
	idna.CheckHyphens(false), idna.Transitional(false))

// aLabels returns name in lower-case A-labels without a trailing dot; ok is
// false when a U-label is not valid IDNA. ASCII names are only
// lower-cased, whatever they hold.
func aLabels(name string) (string, bool) {
	name = strings.TrimSuffix(name, ".")
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			// RFC 8461 §3.2: mx patterns name A-labels, "not the
			// Unicode-encoded U-label"; so a U-label is converted (RFC 5891
			// §5) before it is compared.
			a, err := toASCII.ToASCII(name)
			if err != nil {
				return "", false
			}
			return strings.ToLower(a), true
		}
	}
	return strings.ToLower(name), true
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// validPolicyExtValue: visible characters and UTF-8, inner spaces allowed,
// no CTLs, not empty, no leading or trailing space.
func validPolicyExtValue(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for _, r := range s {
		if r == 0xfffd || r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// validMXPattern: ["*."] Domain, with Domain per RFC 5321 §4.1.2 (letters,
// digits and inner hyphens; labels of 1 to 63 octets; 253 octets at most).
func validMXPattern(s string) bool {
	s = strings.TrimPrefix(s, "*.")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

// String returns the policy in the RFC 8461 §3.2 format, CRLF line ends,
// fields in the order version, mode, mx, max_age, then extensions.
func (p *Policy) String() string {
	var b strings.Builder
	b.WriteString("version: " + p.Version + "\r\nmode: " + string(p.Mode) + "\r\n")
	for _, mx := range p.MX {
		b.WriteString("mx: " + mx + "\r\n")
	}
	b.WriteString("max_age: " + strconv.FormatInt(p.MaxAge, 10) + "\r\n")
	for _, e := range p.Extensions {
		b.WriteString(e.Key + ": " + e.Value + "\r\n")
	}
	return b.String()
}
