package dane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"testing"
	"time"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type certKey struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

// issue makes a certificate; parent nil means self-signed.
func issue(t testing.TB, parent *certKey, cn string, ca bool, notBefore, notAfter time.Time, names ...string) *certKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
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
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
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

	tests := []struct {
		name    string
		records []TLSA
		chain   []*x509.Certificate
		names   []string
		wantErr error
	}{
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyHost(tt.records, tt.chain, now, tt.names...)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("got %v; want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v; want %v", err, tt.wantErr)
			}
			if errors.Is(err, ErrMismatch) && errors.Is(err, ErrNoUsableRecords) {
				t.Fatalf("%v is both mismatch and no usable records", err)
			}
		})
	}
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
