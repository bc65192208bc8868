package validate

import (
	"time"
)

// Severity ranks a finding. Only errors make a domain ineligible.
type Severity string

// Severities.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityInfo    Severity = "info"
)

// Finding is one thing the checker saw. Code is stable: tests, the web UI,
// the bot and the database key on it. Summary fits a badge; Message says
// what was seen and how to fix it.
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Summary  string   `json:"summary"`
	Message  string   `json:"message"`
	Host     string   `json:"host,omitempty"`
	IP       string   `json:"ip,omitempty"`
}

// Result is the verdict on one domain.
type Result struct {
	Domain    string      `json:"domain"`
	Eligible  bool        `json:"eligible"`
	DNSSEC    bool        `json:"dnssec"`
	MXs       []MXResult  `json:"mxs"`
	MTASTS    *MTASTSInfo `json:"mta_sts,omitempty"`
	Findings  []Finding   `json:"findings"`
	CheckedAt time.Time   `json:"checked_at"`
}

// MXResult is one MX host of the domain and what each of its addresses did.
type MXResult struct {
	Host       string          `json:"host"`
	Preference uint16          `json:"preference"`
	Addresses  []AddressResult `json:"addresses"`
}

// AddressResult is what one address of an MX host showed. OK means it
// passed every STARTTLS and certificate check.
type AddressResult struct {
	IP           string    `json:"ip"`
	OK           bool      `json:"ok"`
	TLSVersion   string    `json:"tls_version,omitempty"`
	Cipher       string    `json:"cipher,omitempty"`
	CertSubject  string    `json:"cert_subject,omitempty"`
	CertIssuer   string    `json:"cert_issuer,omitempty"`
	CertNotAfter time.Time `json:"cert_not_after,omitzero"`
}

// MTASTSInfo is the domain's MTA-STS policy, when one was fetched.
type MTASTSInfo struct {
	ID     string   `json:"id"`
	Mode   string   `json:"mode"` // enforce, testing or none
	MX     []string `json:"mx"`
	MaxAge int64    `json:"max_age"`
}

// HasErrors reports whether any finding is an error.
func (r *Result) HasErrors() bool {
	for _, f := range r.Findings {
		if f.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Codes returns the codes of the findings, in order.
func (r *Result) Codes() []string {
	codes := make([]string, 0, len(r.Findings))
	for _, f := range r.Findings {
		codes = append(codes, f.Code)
	}
	return codes
}
