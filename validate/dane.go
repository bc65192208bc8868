package validate

import (
	"errors"
	"time"

	"context"
	"crypto/x509"
	"github.com/starttls-preload/starttls-preload/validate/dane"
	"strings"

	"github.com/miekg/dns"
)

// tlsaSet is the DNSSEC-authenticated TLSA RRset of an MX host
// (RFC 7672 §2.2: _25._tcp.<host>).
type tlsaSet struct {
	records []dane.TLSA
	bad     int // records whose data did not parse
}

// lookupTLSA fetches _25._tcp.host TLSA. It returns nil when there is none
// or the answer is not authenticated (then DANE does not apply).
func (v *Validator) lookupTLSA(ctx context.Context, host string) (*tlsaSet, error) {
	ans, err := v.dns.query(ctx, tlsaName(host), dns.TypeTLSA)
	return tlsaRecords(ans, err)
}

// tlsaName is where an MX host's TLSA records are (RFC 7672 §2.2).
func tlsaName(host string) string { return "_25._tcp." + host }

// tlsaRecords reads the answer to a TLSA query (ans, err) as lookupTLSA
// returns it.
func tlsaRecords(ans *answer, err error) (*tlsaSet, error) {
	if err != nil {
		return nil, err
	}
	if !ans.ad || ans.nxdomain {
		return nil, nil
	}
	set := &tlsaSet{}
	for _, rr := range ans.rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			r, err := dane.ParseTLSA(t.Usage, t.Selector, t.MatchingType, t.Certificate)
			if err != nil {
				set.bad++
				continue
			}
			set.records = append(set.records, r)
		}
	}
	if len(set.records) == 0 && set.bad == 0 {
		return nil, nil
	}
	return set, nil
}

// daneOutcome is how one server's chain fared against its host's TLSA set.
type daneOutcome struct {
	checked bool // a TLSA set applied and a chain was seen
	usable  bool // the set held at least one usable record
	matched bool
	detail  string // why it did not match
}

// match applies RFC 7672 §3.1 to a presented chain (package dane): DANE-EE(3)
// records match the leaf whatever its names and dates; DANE-TA(2) records
// match an issuer the server sent, or carry it whole ("2 0 0", "2 1 0"), and
// it must sign a valid chain to a leaf that matches the MX host name;
// PKIX-TA(0) and PKIX-EE(1) are unusable; per usage and selector only the
// strongest digest published is used (RFC 7671 §9).
func (s *tlsaSet) match(chain []*x509.Certificate, host string, now time.Time) daneOutcome {
	out := daneOutcome{checked: len(chain) > 0}
	if !out.checked {
		return out
	}
	err := dane.VerifyHost(s.records, chain, now, host)
	switch {
	case err == nil:
		out.usable, out.matched = true, true
	case errors.Is(err, dane.ErrNoUsableRecords):
	default:
		out.usable = true
		out.detail = errText(err)
	}
	return out
}

// daneFindings reports the DANE state of one MX host for a domain whose MX
// answer was authenticated.
func (h *hostInfo) daneFindings(host string, checks []*addrCheck, secure bool) []Finding {
	if !secure || !h.secure {
		return nil
	}
	if h.tlsaErr != nil {
		return []Finding{finding(CodeDANELookupFailed, host, "", "Looking up TLSA records at _25._tcp.%s failed: %v.", host, errText(h.tlsaErr))}
	}
	if h.tlsa == nil {
		return nil
	}
	var fs []Finding
	var matched []string
	for _, c := range checks {
		d := c.dane
		switch {
		case !d.checked:
		case !d.usable:
			fs = append(fs, finding(CodeDANEUnusable, host, c.res.IP, "_25._tcp.%s has TLSA records but none with usage DANE-TA(2) or DANE-EE(3), a known selector and matching type, and data that fits them (a digest of the right length, or a whole certificate or public key).", host))
		case !d.matched:
			fs = append(fs, finding(CodeDANEMismatch, host, c.res.IP, "The certificate chain presented by %s (%s) matches none of the TLSA records at _25._tcp.%s: %s.", host, c.res.IP, host, d.detail))
		default:
			matched = append(matched, c.res.IP)
		}
	}
	if len(matched) > 0 && len(fs) == 0 {
		fs = append(fs, finding(CodeDANEValid, host, "", "The certificates of %s (%s) match its DNSSEC-signed TLSA records.", host, strings.Join(matched, ", ")))
	}
	return fs
}
