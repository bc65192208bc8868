package prcheck

import (
	"context"
	"fmt"
	"regexp"
	"strings"
)

// TXTLookup answers TXT queries: each record's strings joined, one value
// per record. A name without TXT records is no error: no values (the
// lifecycle package and validate offer one; tests use a map).
type TXTLookup interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// ProofPrefix is the label under which owners publish their proof.
const ProofPrefix = "_starttls-preload."

// ProofName returns the DNS name that holds the proof for domain.
func ProofName(domain string) string { return ProofPrefix + domain }

// ProofRecord returns the exact record to publish, in zone-file form, to
// prove control of domain for the pull request at prURL.
func ProofRecord(domain, prURL string) string {
	return fmt.Sprintf("%s. 300 IN TXT %q", ProofName(domain), prURL)
}

// Proof codes (see the package documentation). A code never changes meaning.
const (
	ProofOK           = "proof.ok"
	ProofLabel        = "proof.label"
	ProofMissing      = "proof.missing"
	ProofOtherPR      = "proof.other_pr"
	ProofNotChanged   = "proof.not_changed"
	ProofMismatch     = "proof.mismatch"
	ProofLookupFailed = "proof.lookup_failed"
)

// Proof is what the DNS (or a label) says about a domain's ownership for
// one pull request.
type Proof struct {
	Code string `json:"code"`
	// Proven is true for ProofOK and ProofLabel.
	Proven bool `json:"proven"`
	// Name is the DNS name looked up, Record the exact record to publish.
	Name   string `json:"name"`
	Record string `json:"record"`
	// Message says what was found and what to do, in one or two sentences.
	// It may quote TXT values: render it escaped.
	Message string `json:"message"`
}

// prURLPattern matches a pull request URL: scheme, host, owner, name, number.
var prURLPattern = regexp.MustCompile(`^https?://[^/\s]+/[^/\s]+/[^/\s]+/pull/[0-9]+/?$`)

// maxQuoted bounds how much of a TXT value a message quotes.
const maxQuoted = 120

// VerifyProof looks up _starttls-preload.<domain> and decides whether it
// proves control of domain for the pull request at prURL. changes reports
// whether a pull request URL changes the domain; it is asked about this
// pull request only (nil: it does). An error is returned only when ctx is
// done; a failed look-up is ProofLookupFailed.
func VerifyProof(ctx context.Context, txt TXTLookup, domain, prURL string, changes func(prURL string) bool) (Proof, error) {
	p := Proof{Name: ProofName(domain), Record: ProofRecord(domain, prURL)}
	vals, err := txt.LookupTXT(ctx, p.Name)
	if err != nil {
		if ctx.Err() != nil {
			return p, ctx.Err()
		}
		p.Code = ProofLookupFailed
		p.Message = fmt.Sprintf("Looking up the TXT record at %s failed (%s). Make sure the name servers answer, then re-run the check.", p.Name, cut(err.Error()))
		return p, nil
	}
	if len(vals) == 0 {
		p.Code = ProofMissing
		p.Message = fmt.Sprintf("There is no TXT record at %s. Publish the record below to show that you control the domain.", p.Name)
		return p, nil
	}
	want := canonicalPRURL(prURL)
	var other string
	for _, v := range vals {
		v = strings.TrimSpace(v)
		if canonicalPRURL(v) == want {
			if changes != nil && !changes(prURL) {
				p.Code = ProofNotChanged
				p.Message = fmt.Sprintf("The TXT record at %s names this pull request, but it does not change %s.", p.Name, domain)
				return p, nil
			}
			p.Code, p.Proven = ProofOK, true
			p.Message = fmt.Sprintf("The TXT record at %s names this pull request.", p.Name)
			return p, nil
		}
		// Another pull request's URL, not this one's with another scheme
		// (which is only not the exact value: a mismatch).
		if other == "" && prURLPattern.MatchString(v) && canonicalPRURL(withScheme(v, want)) != want {
			other = v
		}
	}
	if other != "" {
		p.Code = ProofOtherPR
		p.Message = fmt.Sprintf("The TXT record at %s names another pull request (%s). A record proves control only for the pull request it names: change its value to this pull request's URL.", p.Name, cut(other))
		return p, nil
	}
	p.Code = ProofMismatch
	p.Message = fmt.Sprintf("The TXT record at %s holds %s, not this pull request's URL. Change its value to the one below.", p.Name, quoteValues(vals))
	return p, nil
}

// LabelProof is the proof of a removal approved by the maintainers' label.
func LabelProof(domain, prURL, label string) Proof {
	return Proof{Code: ProofLabel, Proven: true, Name: ProofName(domain), Record: ProofRecord(domain, prURL),
		Message: fmt.Sprintf("A maintainer approved the removal with the label %q.", label)}
}

// canonicalPRURL lower-cases the URL and drops one trailing slash, so
// "https://GitHub.com/O/R/pull/7/" names the same pull request: scheme and
// host are case-insensitive (RFC 3986 §6.2.2.1), and so are GitHub's owner
// and repository names; the rest is "pull" and digits. The scheme must
// still be the repository's own (https on github.com).
func canonicalPRURL(s string) string {
	return strings.ToLower(strings.TrimSuffix(s, "/"))
}

// withScheme returns u with the scheme of like.
func withScheme(u, like string) string {
	_, rest, ok := strings.Cut(u, "://")
	scheme, _, ok2 := strings.Cut(like, "://")
	if !ok || !ok2 {
		return u
	}
	return scheme + "://" + rest
}

func quoteValues(vals []string) string {
	var b strings.Builder
	for i, v := range vals {
		if i == 3 {
			fmt.Fprintf(&b, " and %d more", len(vals)-3)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(fmt.Sprintf("%q", cut(v)))
	}
	return b.String()
}

// cut shortens s to maxQuoted bytes (on a rune boundary) with an ellipsis.
func cut(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	i := maxQuoted
	for i > 0 && !isRuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
