// Package dane verifies a server's certificate chain against TLSA records
// the way an SMTP client does (DANE for SMTP, RFC 7672, on top of RFC 6698
// and RFC 7671).
//
// The package is pure: callers look up "_25._tcp.<mx>" TLSA records
// themselves (and only use them when the answer is DNSSEC-authenticated,
// RFC 7672 §2.2), then call Verify with the chain the server presented.
//
// Usable records: usages DANE-TA(2) and DANE-EE(3) are usable; PKIX-TA(0)
// and PKIX-EE(1) are not (RFC 7672 §3.1.3). Selectors Cert(0) and SPKI(1)
// and matching types Full(0), SHA2-256(1) and SHA2-512(2) are known. A
// digest record is usable when its data has the digest's length; a Full(0)
// record when its data is exactly one DER certificate (selector Cert) or
// one DER SubjectPublicKeyInfo (selector SPKI): data that is not is
// unusable, as OpenSSL (and so Postfix) treat it, not a mismatch.
//
// Digest algorithm agility (RFC 7671 §9): for each (usage, selector) pair,
// only the digest records of the strongest matching type published for
// that pair among the usable records are used (SHA2-512 over SHA2-256);
// weaker digest records of the same pair are ignored, so that a zone can
// retire a weak digest by publishing a stronger one next to it. Full(0) is
// not a digest: Full(0) records are always used and do not make digest
// records weaker. Unusable records (a digest of the wrong length, an
// unknown matching type) never count as stronger.
//
// DANE-TA(2) trust anchors: a certificate the server sent after the leaf
// that matches the record is the trust anchor (RFC 7671 §5.2.2 asks
// servers to send it). Servers may omit it when the record carries it
// whole (RFC 7672 §3.1.2):
//
//   - "2 0 0": the record's certificate is the only root and the sent
//     certificates after the leaf are intermediates; the anchor's validity
//     dates are checked like those of every other certificate on the path.
//   - "2 1 0": the record carries a bare public key (RFC 7671 §5.2.3). The
//     certificate the server sent that this key signed (the leaf itself or
//     an issuer sent after it) is taken as the trust anchor, checked for its
//     validity dates, and the leaf must chain to it through the other
//     certificates sent. The key itself has no name and no dates.
//
// A digest ("2 x 1", "2 x 2") cannot stand in for an omitted anchor: such
// a record matches only a certificate that was sent.
//
// A DANE-TA(2) record that matches the leaf itself (and no issuer) is a
// mismatch: usage 2 names a trust anchor that issued the end-entity
// certificate (RFC 6698 §2.1.1), and RFC 7671 §5.2.2 has servers send that
// issuer after the leaf; OpenSSL's DANE verification, which Postfix and
// Exim use, does not take the leaf for its own trust anchor either, so
// DANE senders refuse such a server. The mismatch's reason says so and
// points to usage DANE-EE(3), which is what a record for the leaf means.
package dane

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
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
// usage DANE-TA(2) or DANE-EE(3), a known selector, a known matching type,
// and data of the length that matching type produces or, for Full(0), data
// that parses as what the selector selects.
func (r TLSA) Usable() bool {
	_, ok := r.prepare()
	return ok
}

// record is a usable TLSA record with its Full(0) data parsed.
type record struct {
	TLSA
	cert *x509.Certificate // Full(0) with selector Cert
	key  any               // Full(0) with selector SPKI
}

// prepare checks that r is usable and parses its Full(0) data.
func (r TLSA) prepare() (record, bool) {
	switch r.Usage {
	case UsageDANETA, UsageDANEEE:
	default:
		// RFC 7672 §3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP.
		return record{}, false
	}
	switch r.MatchingType {
	case MatchFull:
		switch r.Selector {
		case SelectorCert:
			// Rejects trailing data: the data is one certificate.
			c, err := x509.ParseCertificate(r.Data)
			if err != nil {
				return record{}, false
			}
			return record{TLSA: r, cert: c}, true
		case SelectorSPKI:
			k, err := x509.ParsePKIXPublicKey(r.Data)
			if err != nil {
				return record{}, false
			}
			return record{TLSA: r, key: k}, true
		}
		return record{}, false
	case MatchSHA256:
		if len(r.Data) != sha256.Size {
			return record{}, false
		}
	case MatchSHA512:
		if len(r.Data) != sha512.Size {
			return record{}, false
		}
	default:
		return record{}, false
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return record{}, false
	}
	return record{TLSA: r}, true
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

// digestStrength orders the digest matching types a client supports, for
// RFC 7671 §9: higher is stronger; 0 is not a digest (Full(0)).
func digestStrength(matchingType uint8) int {
	switch matchingType {
	case MatchSHA256:
		return 1
	case MatchSHA512:
		return 2
	}
	return 0
}

// digestName names a digest matching type in messages.
func digestName(matchingType uint8) string {
	switch matchingType {
	case MatchSHA256:
		return "SHA2-256"
	case MatchSHA512:
		return "SHA2-512"
	}
	return fmt.Sprintf("matching type %d", matchingType)
}

// pair is a (usage, selector) combination, the unit of digest algorithm
// agility (RFC 7671 §9).
type pair struct{ usage, selector uint8 }

// selectRecords keeps the usable records and applies digest algorithm
// agility to them. It returns the records to match and, for the message of
// a mismatch, a note for each usable record it set aside as weaker.
func selectRecords(records []TLSA) (use []record, notes []string) {
	var usable []record
	strongest := map[pair]uint8{} // the strongest digest matching type per pair
	for _, r := range records {
		p, ok := r.prepare()
		if !ok {
			// Unusable records never count as stronger.
			continue
		}
		usable = append(usable, p)
		k := pair{r.Usage, r.Selector}
		if digestStrength(r.MatchingType) > digestStrength(strongest[k]) {
			strongest[k] = r.MatchingType
		}
	}
	for _, p := range usable {
		// RFC 7671 §9: for each usage and selector, use only the records
		// of the strongest digest published; Full(0) is not a digest and
		// is always used.
		best := strongest[pair{p.Usage, p.Selector}]
		if p.MatchingType != MatchFull && p.MatchingType != best {
			notes = append(notes, fmt.Sprintf("%s %d %d: not used, %s records are published for %s selector %d (RFC 7671 §9)",
				usageName(p.Usage), p.Selector, p.MatchingType, digestName(best), usageName(p.Usage), p.Selector))
			continue
		}
		use = append(use, p)
	}
	return use, notes
}

// usageName names a usable usage in messages.
func usageName(usage uint8) string {
	if usage == UsageDANETA {
		return "DANE-TA"
	}
	return "DANE-EE"
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
// Only the records that digest algorithm agility keeps are matched (see
// the package doc).
//
//   - DANE-EE(3): the leaf matches the record; its names and validity
//     dates are ignored (RFC 7672 §3.1.1).
//   - DANE-TA(2): the trust anchor is a certificate the server sent after
//     the leaf that matches the record, or the record's own certificate or
//     public key (Full(0)) when the server omitted it; the leaf chains to
//     it through the certificates sent, every certificate on that path is
//     within its validity dates at now, and the leaf matches a name
//     (RFC 7672 §3.1.2, §3.2).
func VerifyHost(records []TLSA, chain []*x509.Certificate, now time.Time, names ...string) error {
	use, notes := selectRecords(records)
	if len(use) == 0 {
		return ErrNoUsableRecords
	}
	if len(chain) == 0 {
		return fmt.Errorf("%w: no certificate presented", ErrMismatch)
	}
	leaf := chain[0]
	var reasons []string
	for _, r := range use {
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
	for _, r := range use {
		if r.Usage != UsageDANETA {
			continue
		}
		err := verifyTA(r, chain, now, names)
		if err == nil {
			return nil
		}
		if r.Matches(leaf) {
			// RFC 6698 §2.1.1, RFC 7671 §5.2.2: a DANE-TA(2) record names a
			// trust anchor that issued the leaf; OpenSSL's DANE (and so
			// Postfix and Exim) never takes the leaf for one.
			err = errTAIsLeaf
		}
		reasons = append(reasons, fmt.Sprintf("DANE-TA %d %d: %v", r.Selector, r.MatchingType, err))
	}
	reasons = append(reasons, notes...)
	return fmt.Errorf("%w (%s)", ErrMismatch, strings.Join(reasons, "; "))
}

// errTAIsLeaf is why a DANE-TA(2) record that matches the leaf, and no
// issuer, fails.
var errTAIsLeaf = errors.New("matches the leaf certificate itself, which a DANE-TA(2) record cannot: " +
	"it names a trust anchor that issued the leaf (RFC 6698 §2.1.1, RFC 7671 §5.2.2), and OpenSSL, and so Postfix and Exim, " +
	"refuse it too; publish it with usage DANE-EE(3) (\"3 x y\") or make it match the issuing CA")

// verifyTA checks one DANE-TA(2) record: RFC 7672 §3.1.2 and RFC 7671 §5.2.
func verifyTA(r record, chain []*x509.Certificate, now time.Time, names []string) error {
	leaf := chain[0]
	for i := 1; i < len(chain); i++ {
		if r.Matches(chain[i]) {
			return verifyPath(chain[i], chain[1:i], leaf, now, names)
		}
	}
	switch {
	case r.cert != nil:
		// RFC 7672 §3.1.2: with "2 0 0" the server may omit the trust
		// anchor; the record's certificate is the only root.
		if bytes.Equal(r.cert.Raw, leaf.Raw) {
			return errors.New("the record holds the leaf itself, not an issuer")
		}
		return verifyPath(r.cert, chain[1:], leaf, now, names)
	case r.key != nil:
		// RFC 7671 §5.2.3: with "2 1 0" the anchor is a bare public key.
		// A certificate it signed stands for it in the path. The last
		// certificate sent is the likeliest, so the search starts there.
		var err error = errors.New("no certificate sent is signed by the record's public key")
		for i := len(chain) - 1; i >= 0; i-- {
			c := chain[i]
			if !signedBy(c, r.key) {
				continue
			}
			if i == 0 && bytes.Equal(c.RawSubjectPublicKeyInfo, r.Data) {
				// A self-signed leaf under the record's key is the leaf
				// itself, not an issuer.
				continue
			}
			if err = verifyPath(c, chain[1:max(i, 1)], leaf, now, names); err == nil {
				return nil
			}
		}
		return err
	}
	return errors.New("no certificate sent after the leaf matches")
}

// signedBy reports whether key made c's signature. The key has no
// certificate of its own, so it stands in a bare CA certificate.
func signedBy(c *x509.Certificate, key any) bool {
	issuer := &x509.Certificate{PublicKey: key, BasicConstraintsValid: true, IsCA: true}
	switch key.(type) {
	case *rsa.PublicKey:
		issuer.PublicKeyAlgorithm = x509.RSA
	case *ecdsa.PublicKey:
		issuer.PublicKeyAlgorithm = x509.ECDSA
	case ed25519.PublicKey:
		issuer.PublicKeyAlgorithm = x509.Ed25519
	default:
		return false
	}
	return c.CheckSignatureFrom(issuer) == nil
}

// verifyPath checks that leaf chains to anchor through intermediates at
// now, every certificate on the path within its validity dates, and that
// the leaf matches one of names (none: not checked).
func verifyPath(anchor *x509.Certificate, intermediates []*x509.Certificate, leaf *x509.Certificate, now time.Time, names []string) error {
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	for _, c := range intermediates {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
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
		if leaf.VerifyHostname(strings.TrimSuffix(n, ".")) == nil {
			return nil
		}
	}
	return fmt.Errorf("leaf matches none of %q", names)
}
