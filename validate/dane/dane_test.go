package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type certKey struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serial int64

// issue makes a certificate with a P-256 key; parent nil means self-signed.
func issue(t testing.TB, parent *certKey, cn string, ca bool, notBefore, notAfter time.Time, names ...string) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return issueKey(t, key, parent, cn, ca, notBefore, notAfter, names...)
}

// issueKey is issue with the certificate's key given.
func issueKey(t testing.TB, key crypto.Signer, parent *certKey, cn string, ca bool, notBefore, notAfter time.Time, names ...string) *certKey {
	t.Helper()
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		DNSNames:              names,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		IsCA:                  ca,
	}
	if ca {
		tmpl.KeyUsage = x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, signKey := tmpl, key
	if parent != nil {
		signer, signKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, key.Public(), signKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &certKey{c, key}
}

func rec(usage, selector, mtype uint8, c *x509.Certificate) TLSA {
	data := c.Raw
	if selector == SelectorSPKI {
		data = c.RawSubjectPublicKeyInfo
	}
	switch mtype {
	case MatchSHA256:
		h := sha256.Sum256(data)
		data = h[:]
	case MatchSHA512:
		h := sha512.Sum512(data)
		data = h[:]
	}
	return TLSA{usage, selector, mtype, data}
}

func TestVerify(t *testing.T) {
	valid := [2]time.Time{now.Add(-24 * time.Hour), now.Add(90 * 24 * time.Hour)}
	root := issue(t, nil, "Root", true, valid[0], valid[1])
	inter := issue(t, root, "Intermediate", true, valid[0], valid[1])
	leaf := issue(t, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	wildLeaf := issue(t, inter, "*.example.test", false, valid[0], valid[1], "*.example.test")
	expiredLeaf := issue(t, inter, "mx.example.test", false, now.Add(-48*time.Hour), now.Add(-time.Hour), "mx.example.test")
	otherKeyLeaf := issue(t, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	// Self-signed, expired, and for another name: DANE-EE still accepts it.
	selfSigned := issue(t, nil, "other.test", false, now.Add(-48*time.Hour), now.Add(-time.Hour), "other.test")
	otherRoot := issue(t, nil, "Other Root", true, valid[0], valid[1])

	chain := []*x509.Certificate{leaf.cert, inter.cert}
	withRoot := []*x509.Certificate{leaf.cert, inter.cert, root.cert}

	tests := []verifyCase{
		{"EE SPKI SHA-256", []TLSA{rec(3, 1, 1, leaf.cert)}, chain, nil, nil},
		{"EE cert SHA-256", []TLSA{rec(3, 0, 1, leaf.cert)}, chain, nil, nil},
		{"EE SPKI SHA-512", []TLSA{rec(3, 1, 2, leaf.cert)}, chain, nil, nil},
		{"EE cert full", []TLSA{rec(3, 0, 0, leaf.cert)}, chain, nil, nil},
		{"EE SPKI full", []TLSA{rec(3, 1, 0, leaf.cert)}, chain, nil, nil},
		{"EE ignores name, expiry and issuer", []TLSA{rec(3, 1, 1, selfSigned.cert)}, []*x509.Certificate{selfSigned.cert}, []string{"mx.example.test"}, nil},
		{"EE mismatch", []TLSA{rec(3, 1, 1, otherKeyLeaf.cert)}, chain, nil, ErrMismatch},
		{"EE matches intermediate only", []TLSA{rec(3, 1, 1, inter.cert)}, chain, nil, ErrMismatch},
		{"EE one of two matches (key rollover)", []TLSA{rec(3, 1, 1, otherKeyLeaf.cert), rec(3, 1, 1, leaf.cert)}, chain, nil, nil},
		{"TA intermediate", []TLSA{rec(2, 0, 1, inter.cert)}, chain, nil, nil},
		{"TA intermediate SPKI, name checked", []TLSA{rec(2, 1, 1, inter.cert)}, chain, []string{"example.test", "mx.example.test."}, nil},
		{"TA wildcard leaf", []TLSA{rec(2, 1, 1, inter.cert)}, []*x509.Certificate{wildLeaf.cert, inter.cert}, []string{"mx.example.test"}, nil},
		{"TA root sent", []TLSA{rec(2, 0, 1, root.cert)}, withRoot, nil, nil},
		{"TA root not sent", []TLSA{rec(2, 0, 1, root.cert)}, chain, nil, ErrMismatch},
		{"TA name mismatch", []TLSA{rec(2, 0, 1, inter.cert)}, chain, []string{"mail.example.test"}, ErrMismatch},
		{"TA expired leaf", []TLSA{rec(2, 0, 1, inter.cert)}, []*x509.Certificate{expiredLeaf.cert, inter.cert}, nil, ErrMismatch},
		{"TA matching the leaf only", []TLSA{rec(2, 0, 1, leaf.cert)}, chain, nil, ErrMismatch},
		{"TA other root", []TLSA{rec(2, 0, 1, otherRoot.cert)}, []*x509.Certificate{leaf.cert, inter.cert, otherRoot.cert}, nil, ErrMismatch},
		{"TA mismatch, EE match", []TLSA{rec(2, 0, 1, otherRoot.cert), rec(3, 1, 1, leaf.cert)}, chain, nil, nil},
		{"PKIX-TA and PKIX-EE unusable", []TLSA{rec(0, 0, 1, inter.cert), rec(1, 1, 1, leaf.cert)}, chain, nil, ErrNoUsableRecords},
		{"unknown selector", []TLSA{{3, 2, 1, make([]byte, 32)}}, chain, nil, ErrNoUsableRecords},
		{"unknown matching type", []TLSA{{3, 1, 3, make([]byte, 32)}}, chain, nil, ErrNoUsableRecords},
		{"unknown usage", []TLSA{{4, 1, 1, make([]byte, 32)}}, chain, nil, ErrNoUsableRecords},
		{"SHA-256 of the wrong length", []TLSA{{3, 1, 1, make([]byte, 31)}}, chain, nil, ErrNoUsableRecords},
		{"empty full data", []TLSA{{3, 1, 0, nil}}, chain, nil, ErrNoUsableRecords},
		{"no records", nil, chain, nil, ErrNoUsableRecords},
		{"unusable plus mismatching usable", []TLSA{rec(1, 1, 1, leaf.cert), rec(3, 1, 1, otherKeyLeaf.cert)}, chain, nil, ErrMismatch},
		{"no chain", []TLSA{rec(3, 1, 1, leaf.cert)}, nil, nil, ErrMismatch},
	}
	runVerifyCases(t, tests)
}

func TestParseTLSA(t *testing.T) {
	r, err := ParseTLSA(3, 1, 1, "0A0b")
	if err != nil || r.String() != "3 1 1 0a0b" {
		t.Fatalf("got %v, %v", r, err)
	}
	if _, err := ParseTLSA(3, 1, 1, "xyz"); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("got %v; want %v", err, ErrBadRecord)
	}
}

// verdict runs VerifyHost and reduces its result to the error kind a test
// table names: nil, ErrMismatch or ErrNoUsableRecords.
// verifyCase is a chain and TLSA records with the verdict expected.
type verifyCase struct {
	name    string
	records []TLSA
	chain   []*x509.Certificate
	names   []string
	wantErr error
}

func runVerifyCases(t *testing.T, tests []verifyCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verdict(t, tt.records, tt.chain, tt.names, tt.wantErr)
		})
	}
}

func verdict(t *testing.T, records []TLSA, chain []*x509.Certificate, names []string, want error) error {
	t.Helper()
	err := VerifyHost(records, chain, now, names...)
	switch {
	case want == nil && err != nil:
		t.Fatalf("got %v; want nil", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("got %v; want %v", err, want)
	case errors.Is(err, ErrMismatch) && errors.Is(err, ErrNoUsableRecords):
		t.Fatalf("%v is both mismatch and no usable records", err)
	}
	return err
}

// TestDigestAgility: RFC 7671 §9. Per (usage, selector), only the records
// of the strongest digest published are used; Full(0) always is; unusable
// records never count as stronger.
func TestDigestAgility(t *testing.T) {
	valid := [2]time.Time{now.Add(-24 * time.Hour), now.Add(90 * 24 * time.Hour)}
	root := issue(t, nil, "Root", true, valid[0], valid[1])
	inter := issue(t, root, "Intermediate", true, valid[0], valid[1])
	otherInter := issue(t, root, "Other Intermediate", true, valid[0], valid[1])
	leaf := issue(t, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	other := issue(t, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	chain := []*x509.Certificate{leaf.cert, inter.cert}
	l, o := leaf.cert, other.cert

	tests := []struct {
		name    string
		records []TLSA
		wantErr error
	}{
		{"SHA-256 matches, SHA-512 does not", []TLSA{rec(3, 1, 1, l), rec(3, 1, 2, o)}, ErrMismatch},
		{"SHA-512 matches, SHA-256 does not", []TLSA{rec(3, 1, 2, l), rec(3, 1, 1, o)}, nil},
		{"both match", []TLSA{rec(3, 1, 1, l), rec(3, 1, 2, l)}, nil},
		{"order does not matter", []TLSA{rec(3, 1, 2, o), rec(3, 1, 1, l)}, ErrMismatch},
		{"rollover under both digests", []TLSA{rec(3, 1, 1, o), rec(3, 1, 2, o), rec(3, 1, 1, l), rec(3, 1, 2, l)}, nil},
		{"selectors are independent", []TLSA{rec(3, 1, 1, l), rec(3, 0, 2, o)}, nil},
		{"selectors are independent, stronger one applies", []TLSA{rec(3, 0, 1, l), rec(3, 0, 2, o), rec(3, 1, 1, o)}, ErrMismatch},
		{"usages are independent", []TLSA{rec(3, 1, 1, l), rec(2, 1, 2, otherInter.cert)}, nil},
		{"DANE-TA: SHA-256 matches, SHA-512 does not", []TLSA{rec(2, 0, 1, inter.cert), rec(2, 0, 2, otherInter.cert)}, ErrMismatch},
		{"DANE-TA: SHA-512 matches", []TLSA{rec(2, 0, 1, otherInter.cert), rec(2, 0, 2, inter.cert)}, nil},
		{"SHA-512 of the wrong length is not stronger", []TLSA{rec(3, 1, 1, l), {3, 1, 2, make([]byte, 32)}}, nil},
		{"unknown matching type is not stronger", []TLSA{rec(3, 1, 1, l), {3, 1, 3, make([]byte, 64)}}, nil},
		{"PKIX-EE SHA-512 is not stronger", []TLSA{rec(3, 1, 1, l), rec(1, 1, 2, o)}, nil},
		{"Full matches next to a stronger digest", []TLSA{rec(3, 1, 0, l), rec(3, 1, 2, o)}, nil},
		{"Full does not make SHA-256 weaker", []TLSA{rec(3, 1, 0, o), rec(3, 1, 1, l)}, nil},
		{"only the weaker digest and Full match... the weaker is not used", []TLSA{rec(3, 1, 0, o), rec(3, 1, 1, l), rec(3, 1, 2, o)}, ErrMismatch},
		{"all weaker records mismatch: still usable", []TLSA{rec(3, 1, 1, o), rec(3, 1, 2, o)}, ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verdict(t, tt.records, chain, []string{"mx.example.test"}, tt.wantErr)
		})
	}

	// The mismatch says which records were set aside and why.
	err := VerifyHost([]TLSA{rec(3, 1, 1, l), rec(3, 1, 2, o)}, chain, now)
	if msg := fmt.Sprint(err); !strings.Contains(msg, "DANE-EE 1 1: not used, SHA2-512 records are published") {
		t.Errorf("mismatch message %q does not name the weaker record", msg)
	}
}

// TestTrustAnchorNotSent: RFC 7672 §3.1.2, RFC 7671 §5.2.2-§5.2.3. A
// DANE-TA record with Full(0) data carries the anchor, so the server may
// omit it; a digest cannot stand in for it.
func TestTrustAnchorNotSent(t *testing.T) {
	valid := [2]time.Time{now.Add(-24 * time.Hour), now.Add(90 * 24 * time.Hour)}
	root := issue(t, nil, "Root", true, valid[0], valid[1])
	inter := issue(t, root, "Intermediate", true, valid[0], valid[1])
	leaf := issue(t, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	otherRoot := issue(t, nil, "Other Root", true, valid[0], valid[1])

	expiredRoot := issue(t, nil, "Expired Root", true, now.Add(-48*time.Hour), now.Add(-time.Hour))
	underExpired := issue(t, expiredRoot, "Intermediate", true, valid[0], valid[1])
	leafUnderExpired := issue(t, underExpired, "mx.example.test", false, valid[0], valid[1], "mx.example.test")

	expiredInter := issue(t, root, "Expired Intermediate", true, now.Add(-48*time.Hour), now.Add(-time.Hour))
	leafUnderExpiredInter := issue(t, expiredInter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")

	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edRoot := issueKey(t, edKey, nil, "Ed25519 Root", true, valid[0], valid[1])
	leafUnderEd := issue(t, edRoot, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaRoot := issueKey(t, rsaKey, nil, "RSA Root", true, valid[0], valid[1])
	interUnderRSA := issue(t, rsaRoot, "Intermediate", true, valid[0], valid[1])
	leafUnderRSA := issue(t, interUnderRSA, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	selfSigned := issue(t, nil, "mx.example.test", true, valid[0], valid[1], "mx.example.test")

	sent := []*x509.Certificate{leaf.cert, inter.cert, root.cert}
	omitted := []*x509.Certificate{leaf.cert, inter.cert}
	leafOnly := []*x509.Certificate{leaf.cert}
	trailing := rec(2, 0, 0, root.cert)
	trailing.Data = append(append([]byte(nil), trailing.Data...), 0)
	names := []string{"mx.example.test"}

	tests := []verifyCase{
		{"2 0 0 anchor sent", []TLSA{rec(2, 0, 0, root.cert)}, sent, names, nil},
		{"2 0 1 anchor sent", []TLSA{rec(2, 0, 1, root.cert)}, sent, names, nil},
		{"2 0 0 anchor omitted", []TLSA{rec(2, 0, 0, root.cert)}, omitted, names, nil},
		{"2 0 0 intermediate anchor omitted", []TLSA{rec(2, 0, 0, inter.cert)}, leafOnly, names, nil},
		{"2 0 0 anchor omitted, path incomplete", []TLSA{rec(2, 0, 0, root.cert)}, leafOnly, names, ErrMismatch},
		{"2 0 1 anchor omitted", []TLSA{rec(2, 0, 1, root.cert)}, omitted, names, ErrMismatch},
		{"2 0 2 anchor omitted", []TLSA{rec(2, 0, 2, root.cert)}, omitted, names, ErrMismatch},
		{"2 1 1 anchor omitted", []TLSA{rec(2, 1, 1, root.cert)}, omitted, names, ErrMismatch},
		{"2 0 0 anchor omitted, name mismatch", []TLSA{rec(2, 0, 0, root.cert)}, omitted, []string{"mail.example.test"}, ErrMismatch},
		{"2 0 0 other root", []TLSA{rec(2, 0, 0, otherRoot.cert)}, omitted, names, ErrMismatch},
		{"2 0 0 of the leaf itself", []TLSA{rec(2, 0, 0, leaf.cert)}, omitted, names, ErrMismatch},
		{"2 0 0 of a self-signed leaf", []TLSA{rec(2, 0, 0, selfSigned.cert)}, []*x509.Certificate{selfSigned.cert}, names, ErrMismatch},
		{"2 0 0 expired anchor omitted", []TLSA{rec(2, 0, 0, expiredRoot.cert)}, []*x509.Certificate{leafUnderExpired.cert, underExpired.cert}, names, ErrMismatch},
		{"2 0 1 expired anchor sent", []TLSA{rec(2, 0, 1, expiredRoot.cert)}, []*x509.Certificate{leafUnderExpired.cert, underExpired.cert, expiredRoot.cert}, names, ErrMismatch},
		{"2 0 0 not a certificate", []TLSA{{2, 0, 0, []byte("not a certificate")}}, omitted, names, ErrNoUsableRecords},
		{"2 0 0 certificate with trailing data", []TLSA{trailing}, sent, names, ErrNoUsableRecords},
		{"2 0 0 not a certificate, next to a mismatch", []TLSA{{2, 0, 0, []byte{0x30, 0x03, 0x02, 0x01, 0x01}}, rec(3, 1, 1, otherRoot.cert)}, omitted, names, ErrMismatch},
		{"3 0 0 not a certificate", []TLSA{{3, 0, 0, []byte{1, 2, 3}}}, omitted, names, ErrNoUsableRecords},
		{"2 1 0 anchor sent", []TLSA{rec(2, 1, 0, root.cert)}, sent, names, nil},
		{"2 1 0 anchor omitted", []TLSA{rec(2, 1, 0, root.cert)}, omitted, names, nil},
		{"2 1 0 issuer of the leaf omitted", []TLSA{rec(2, 1, 0, inter.cert)}, leafOnly, names, nil},
		{"2 1 0 anchor omitted, name mismatch", []TLSA{rec(2, 1, 0, root.cert)}, omitted, []string{"mail.example.test"}, ErrMismatch},
		{"2 1 0 other key", []TLSA{rec(2, 1, 0, otherRoot.cert)}, omitted, names, ErrMismatch},
		{"2 1 0 anchor omitted, intermediate expired", []TLSA{rec(2, 1, 0, root.cert)}, []*x509.Certificate{leafUnderExpiredInter.cert, expiredInter.cert}, names, ErrMismatch},
		{"2 1 0 key of a self-signed leaf", []TLSA{rec(2, 1, 0, selfSigned.cert)}, []*x509.Certificate{selfSigned.cert}, names, ErrMismatch},
		{"2 1 0 Ed25519 anchor omitted", []TLSA{rec(2, 1, 0, edRoot.cert)}, []*x509.Certificate{leafUnderEd.cert}, names, nil},
		{"2 1 0 RSA anchor omitted", []TLSA{rec(2, 1, 0, rsaRoot.cert)}, []*x509.Certificate{leafUnderRSA.cert, interUnderRSA.cert}, names, nil},
		{"2 1 0 not a public key", []TLSA{{2, 1, 0, []byte("not a key")}}, omitted, names, ErrNoUsableRecords},
		{"3 1 0 not a public key", []TLSA{{3, 1, 0, []byte{0x30, 0x00}}}, omitted, names, ErrNoUsableRecords},
	}
	runVerifyCases(t, tests)
}

func TestUsable(t *testing.T) {
	c := issue(t, nil, "Root", true, now.Add(-time.Hour), now.Add(time.Hour)).cert
	tests := []struct {
		r    TLSA
		want bool
	}{
		{rec(3, 1, 1, c), true},
		{rec(2, 0, 2, c), true},
		{rec(2, 0, 0, c), true},
		{rec(3, 1, 0, c), true},
		{TLSA{3, 1, 0, c.Raw}, false}, // a certificate where an SPKI belongs
		{TLSA{2, 0, 0, c.RawSubjectPublicKeyInfo}, false},
		{TLSA{3, 1, 1, make([]byte, 64)}, false},
		{TLSA{3, 1, 2, make([]byte, 32)}, false},
		{TLSA{3, 2, 0, c.Raw}, false},
		{TLSA{0, 0, 0, c.Raw}, false},
	}
	for _, tt := range tests {
		if got := tt.r.Usable(); got != tt.want {
			t.Errorf("%.40s...: Usable() = %v, want %v", tt.r, got, tt.want)
		}
	}
}

// TestTrustAnchorIsTheLeaf: a DANE-TA(2) record names a trust anchor that
// issued the leaf (RFC 6698 §2.1.1, RFC 7671 §5.2.2); one that matches the
// leaf itself is a mismatch, as OpenSSL (and so Postfix and Exim) treats
// it, and the reason says so.
func TestTrustAnchorIsTheLeaf(t *testing.T) {
	valid := [2]time.Time{now.Add(-24 * time.Hour), now.Add(90 * 24 * time.Hour)}
	root := issue(t, nil, "Root", true, valid[0], valid[1])
	inter := issue(t, root, "Intermediate", true, valid[0], valid[1])
	leaf := issue(t, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	selfSigned := issue(t, nil, "mx.example.test", true, valid[0], valid[1], "mx.example.test")
	names := []string{"mx.example.test"}
	for _, sel := range []uint8{SelectorCert, SelectorSPKI} {
		for _, mt := range []uint8{MatchFull, MatchSHA256, MatchSHA512} {
			for _, chain := range [][]*x509.Certificate{{leaf.cert, inter.cert}, {leaf.cert}, {selfSigned.cert}} {
				r := rec(UsageDANETA, sel, mt, chain[0])
				err := verdict(t, []TLSA{r}, chain, names, ErrMismatch)
				if msg := err.Error(); !strings.Contains(msg, "matches the leaf certificate itself") ||
					!strings.Contains(msg, "RFC 6698 §2.1.1") || !strings.Contains(msg, "RFC 7671 §5.2.2") {
					t.Errorf("%s, chain of %d: %v does not say the record is the leaf's", r, len(chain), err)
				}
			}
		}
	}
	// A DANE-EE record for the same leaf is what the owner meant.
	verdict(t, []TLSA{rec(UsageDANETA, SelectorSPKI, MatchSHA256, leaf.cert), rec(UsageDANEEE, SelectorSPKI, MatchSHA256, leaf.cert)},
		[]*x509.Certificate{leaf.cert, inter.cert}, names, nil)
	// A record that matches the issuer is not reported as the leaf's.
	err := verdict(t, []TLSA{rec(UsageDANETA, SelectorCert, MatchSHA256, inter.cert)}, []*x509.Certificate{leaf.cert, inter.cert}, []string{"other.example.test"}, ErrMismatch)
	if strings.Contains(err.Error(), "leaf certificate itself") {
		t.Errorf("%v: an issuer's record reported as the leaf's", err)
	}
}
