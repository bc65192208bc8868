package validate

import (
	"context"
	"crypto/x509"
	"strings"

	"github.com/miekg/dns"
)

// tlsaSet is the DNSSEC-authenticated TLSA RRset of an MX host
// (RFC 7672 §2.2: _25._tcp.<host>).
type tlsaSet struct {
	records []*dns.TLSA
}

// lookupTLSA fetches _25._tcp.host TLSA. It returns nil when there is none
// or the answer is not authenticated (then DANE does not apply).
func (v *Validator) lookupTLSA(ctx context.Context, host string) (*tlsaSet, error) {
	ans, err := v.dns.query(ctx, "_25._tcp."+host, dns.TypeTLSA)
	if err != nil {
		return nil, err
	}
	if !ans.ad || ans.nxdomain {
		return nil, nil
	}
	set := &tlsaSet{}
	for _, rr := range ans.rrs {
		if t, ok := rr.(*dns.TLSA); ok {
			set.records = append(set.records, t)
		}
	}
	if len(set.records) == 0 {
		return nil, nil
	}
	return set, nil
}

// daneOutcome is how one server's chain fared against its host's TLSA set.
type daneOutcome struct {
	checked bool // a TLSA set applied and a chain was seen
	usable  bool // the set held at least one usable record
	matched bool
}

// match applies RFC 7672 §3.1 to a presented chain: DANE-EE(3) records
// match the leaf (name and dates are not checked, §3.1.1), DANE-TA(2)
// records match an issuer the server sent, which must then sign a chain to
// the leaf (§3.1.2). PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP
// (§3.1.3).
func (s *tlsaSet) match(chain []*x509.Certificate, _ *x509.CertPool) daneOutcome {
	out := daneOutcome{checked: len(chain) > 0}
	if !out.checked {
		return out
	}
	for _, r := range s.records {
		if r.Selector > 1 || r.MatchingType > 2 {
			continue
		}
		switch r.Usage {
		case 3:
			out.usable = true
			if r.Verify(chain[0]) == nil {
				out.matched = true
			}
		case 2:
			out.usable = true
			for i, c := range chain[1:] {
				if r.Verify(c) != nil {
					continue
				}
				roots := x509.NewCertPool()
				roots.AddCert(c)
				inter := x509.NewCertPool()
				for _, ic := range chain[1 : i+1] {
					inter.AddCert(ic)
				}
				if _, err := chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
					out.matched = true
				}
			}
		}
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
			fs = append(fs, finding(CodeDANEUnusable, host, c.res.IP, "_25._tcp.%s has TLSA records but none with usage DANE-TA(2) or DANE-EE(3) and a known selector and matching type.", host))
		case !d.matched:
			fs = append(fs, finding(CodeDANEMismatch, host, c.res.IP, "The certificate chain presented by %s (%s) matches none of the TLSA records at _25._tcp.%s.", host, c.res.IP, host))
		default:
			matched = append(matched, c.res.IP)
		}
	}
	if len(matched) > 0 && len(fs) == 0 {
		fs = append(fs, finding(CodeDANEValid, host, "", "The certificates of %s (%s) match its DNSSEC-signed TLSA records.", host, strings.Join(matched, ", ")))
	}
	return fs
}
