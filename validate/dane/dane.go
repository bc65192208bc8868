// Package dane verifies a server's certificate chain against TLSA records
// the way an SMTP client does (DANE for SMTP, RFC 7672, on top of RFC 6698
// and RFC 7671).
//
// The package is pure: callers look up "_25._tcp.<mx>" TLSA records
// themselves (and only use them when the answer is DNSSEC-authenticated,
// RFC 7672 §2.2), then call Verify with the chain the server presented.
//
// Scope: usages DANE-TA(2) and DANE-EE(3) are usable; PKIX-TA(0) and
// PKIX-EE(1) are not (RFC 7672 §3.1.3). For DANE-TA the trust anchor must be
// a certificate the server sent (RFC 7671 §5.2.2 asks servers to include
// it). Digest algorithm agility (RFC 7671 §9) is not applied: any usable
// record that matches is enough.
package dane

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Certificate usages (RFC 6698 §2.1.1, names from RFC 7218).
const (
	UsagePKIXTA uint8 = 0
	UsagePKIXEE uint8 = 1
	UsageDANETA uint8 = 2
	UsageDANEEE uint8 = 3
)

// Selectors (RFC 6698 §2.1.2).
const (
	SelectorCert uint8 = 0 // the full certificate (DER)
	SelectorSPKI uint8 = 1 // the SubjectPublicKeyInfo (DER)
)

// Matching types (RFC 6698 §2.1.3).
const (
	MatchFull   uint8 = 0
	MatchSHA256 uint8 = 1
	MatchSHA512 uint8 = 2
)

// Sentinel errors.
var (
	// ErrNoUsableRecords: none of the records can be used by an SMTP client
	// (RFC 7672 §2.2: with no usable records, DANE does not apply and the
	// sender falls back to opportunistic TLS). Distinct from ErrMismatch.
	ErrNoUsableRecords = errors.New("dane: no usable TLSA records")
	// ErrMismatch: there are usable records and the chain satisfies none;
	// a DANE-enforcing sender refuses to deliver (RFC 7672 §2.2).
	ErrMismatch = errors.New("dane: certificate chain matches no usable TLSA record")
	// ErrBadRecord: ParseTLSA got data that is not hex.
	ErrBadRecord = errors.New("dane: malformed TLSA record")
)

// TLSA is one TLSA record (RFC 6698 §2.1).
type TLSA struct {
	Usage, Selector, MatchingType uint8
	// Data is the certificate association data: the selected DER bytes
	// (MatchFull) or their digest.
	Data []byte
}

// ParseTLSA builds a TLSA from its presentation fields, the data in hex as
// DNS libraries give it.
func ParseTLSA(usage, selector, matchingType uint8, hexData string) (TLSA, error) {
	b, err := hex.DecodeString(hexData)
	if err != nil {
		return TLSA{}, fmt.Errorf("%w: %w", ErrBadRecord, err)
	}
	return TLSA{usage, selector, matchingType, b}, nil
}

// String returns the record in presentation format, e.g. "3 1 1 0a1b...".
func (r TLSA) String() string {
	return fmt.Sprintf("%d %d %d %x", r.Usage, r.Selector, r.MatchingType, r.Data)
}

// Usable reports whether an SMTP client can use the record (RFC 7672 §3.1):
// usage DANE-TA(2) or DANE-EE(3), a known selector, a known matching type
// and data of the length that matching type produces.
func (r TLSA) Usable() bool {
	switch r.Usage {
	case UsageDANETA, UsageDANEEE:
	default:
		// RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP.
		return false
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return len(r.Data) > 0
	case MatchSHA256:
		return len(r.Data) == sha256.Size
	case MatchSHA512:
		return len(r.Data) == sha512.Size
	}
	return false
}

// Matches reports whether cert matches the record's selector, matching type
// and data, whatever its usage.
func (r TLSA) Matches(cert *x509.Certificate) bool {
	var sel []byte
	switch r.Selector {
	case SelectorCert:
		sel = cert.Raw
	case SelectorSPKI:
		sel = cert.RawSubjectPublicKeyInfo
	default:
		return false
	}
	switch r.MatchingType {
	case MatchFull:
		return bytes.Equal(sel, r.Data)
	case MatchSHA256:
		h := sha256.Sum256(sel)
		return bytes.Equal(h[:], r.Data)
	case MatchSHA512:
		h := sha512.Sum512(sel)
		return bytes.Equal(h[:], r.Data)
	}
	return false
}

// Verify checks chain (leaf first, as the server sent it) against records at
// time now. It returns nil when a usable record is satisfied,
// ErrNoUsableRecords when no record is usable, and an error wrapping
// ErrMismatch otherwise. Names are not checked for DANE-TA: use VerifyHost.
func Verify(records []TLSA, chain []*x509.Certificate, now time.Time) error {
	return VerifyHost(records, chain, now)
}

// VerifyHost is Verify that also checks, for a DANE-TA match, that the leaf
// certificate matches one of names (RFC 7672 §3.2.2: the reference
// identifiers are the MX host name and the next-hop domain). With no names
// the caller checks names itself.
//
//   - DANE-EE(3): the leaf matches the record; its names and validity
//     dates are ignored (RFC 7672 §3.1.1).
//   - DANE-TA(2): a certificate the server sent after the leaf matches the
//     record, the leaf chains to it through the certificates sent, every
//     certificate on that path is within its validity dates at now, and the
//     leaf matches a name (RFC 7672 §3.1.2, §3.2).
func VerifyHost(records []TLSA, chain []*x509.Certificate, now time.Time, names ...string) error {
	var usable []TLSA
	for _, r := range records {
		if r.Usable() {
			usable = append(usable, r)
		}
	}
	if len(usable) == 0 {
		return ErrNoUsableRecords
	}
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate presented", ErrMismatch)
	}
	leaf := chain[0]
	var reasons []string
	for _, r := range usable {
		if r.Usage != UsageDANEEE {
			continue
		}
		// RFC 7672 §3.1.1: DANE-EE(3) matches the leaf only; names and
		// expiry are not checked.
		if r.Matches(leaf) {
			return nil
		}
		reasons = append(reasons, fmt.Sprintf("DANE-EE %d %d: leaf does not match", r.Selector, r.MatchingType))
	}
	for _, r := range usable {
		if r.Usage != UsageDANETA {
			continue
		}
		err := verifyTA(r, chain, now, names)
		if err == nil {
			return nil
		}
		reasons = append(reasons, fmt.Sprintf("DANE-TA %d %d: %v", r.Selector, r.MatchingType, err))
	}
	return fmt.Errorf("%w (%s)", ErrMismatch, strings.Join(reasons, "; "))
}

// verifyTA checks one DANE-TA(2) record: RFC 7672 §3.1.2 and RFC 7671 §5.2.
func verifyTA(r TLSA, chain []*x509.Certificate, now time.Time, names []string) error {
	ta := -1
	for i := 1; i < len(chain); i++ {
		if r.Matches(chain[i]) {
			ta = i
			break
		}
	}
	if ta < 0 {
		return errors.New("no certificate sent after the leaf matches")
	}
	roots := x509.NewCertPool()
	roots.AddCert(chain[ta])
	inter := x509.NewCertPool()
	for _, c := range chain[1:ta] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// RFC 7671 §5.2.2: the trust anchor is trusted as is; key usage
		// purposes are not what DANE authenticates.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return fmt.Errorf("chain to the trust anchor does not verify: %w", err)
	}
	if len(names) == 0 {
		return nil
	}
	for _, n := range names {
		// RFC 7672 §3.2.3: wildcards in the leftmost label are allowed.
		if chain[0].VerifyHostname(strings.TrimSuffix(n, ".")) == nil {
			return nil
		}
	}
	return fmt.Errorf("leaf matches none of %q", names)
}
