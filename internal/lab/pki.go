// Package lab is an in-process mail lab for tests and benchmarks: a PKI
// (root, intermediate, leaves), a DNS server and fake SMTP/STARTTLS peers,
// all on loopback addresses. It is ordinary code so that tests of several
// packages can share it; nothing in the product imports it.
package lab

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// PKI is a root CA and an intermediate CA that issue leaf certificates.
// Leaves are signed by the intermediate; the chains they carry decide what
// a server sends.
type PKI struct {
	t testing.TB

	mu        sync.Mutex
	serial    int64
	rootKey   *ecdsa.PrivateKey
	root      *x509.Certificate
	interKey  *ecdsa.PrivateKey
	inter     *x509.Certificate
	otherKey  *ecdsa.PrivateKey // an unrelated root, for untrusted chains
	other     *x509.Certificate
	rootPEM   []byte
	rootPool  *x509.CertPool
	leafKey   *ecdsa.PrivateKey
	createdAt time.Time
}

// NewPKI creates a root CA and an intermediate CA valid from two years ago
// for ten years.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{t: t, createdAt: time.Now()}
	p.rootKey = newKey(t)
	p.root = p.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "Lab Root CA", Organization: []string{"starttls-preload lab"}},
		NotBefore:             p.createdAt.Add(-2 * 365 * 24 * time.Hour),
		NotAfter:              p.createdAt.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, nil, &p.rootKey.PublicKey)
	p.interKey = newKey(t)
	p.inter = p.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "Lab Intermediate CA", Organization: []string{"starttls-preload lab"}},
		NotBefore:             p.createdAt.Add(-2 * 365 * 24 * time.Hour),
		NotAfter:              p.createdAt.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, p.root, p.rootKey, &p.interKey.PublicKey)
	p.otherKey = newKey(t)
	p.other = p.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "Unknown Root CA"},
		NotBefore:             p.createdAt.Add(-2 * 365 * 24 * time.Hour),
		NotAfter:              p.createdAt.Add(10 * 365 * 24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, nil, &p.otherKey.PublicKey)
	p.leafKey = newKey(t)
	p.rootPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.root.Raw})
	p.rootPool = x509.NewCertPool()
	p.rootPool.AddCert(p.root)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("lab: generating key: %v", err)
	}
	return k
}

// sign issues tmpl signed by parent/parentKey, or self-signed when parent is nil.
func (p *PKI) sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, pub *ecdsa.PublicKey) *x509.Certificate {
	p.t.Helper()
	p.mu.Lock()
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.createdAt.UnixNano() + p.serial)
	p.mu.Unlock()
	if parent == nil {
		parent, parentKey = tmpl, nil
	}
	signer := parentKey
	if signer == nil {
		// Self-signed: the key that matches pub signs.
		switch {
		case p.rootKey != nil && pub.Equal(&p.rootKey.PublicKey):
			signer = p.rootKey
		case p.otherKey != nil && pub.Equal(&p.otherKey.PublicKey):
			signer = p.otherKey
		default:
			signer = p.leafKey
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		p.t.Fatalf("lab: creating certificate: %v", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatalf("lab: parsing certificate: %v", err)
	}
	return c
}

func leafTemplate(notBefore, notAfter time.Time, names []string) *x509.Certificate {
	tmpl := &x509.Certificate{
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if len(names) > 0 {
		tmpl.Subject = pkix.Name{CommonName: names[0]}
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	return tmpl
}

func (p *PKI) leaf(notBefore, notAfter time.Time, withIntermediate bool, names []string) tls.Certificate {
	c := p.sign(leafTemplate(notBefore, notAfter, names), p.inter, p.interKey, &p.leafKey.PublicKey)
	chain := [][]byte{c.Raw}
	if withIntermediate {
		chain = append(chain, p.inter.Raw)
	}
	return tls.Certificate{Certificate: chain, PrivateKey: p.leafKey, Leaf: c}
}

// Leaf returns a certificate for names (DNS names or IP addresses) signed by
// the intermediate, valid now for 90 days; its chain is leaf + intermediate.
func (p *PKI) Leaf(names ...string) tls.Certificate {
	p.t.Helper()
	return p.leaf(time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), true, names)
}

// LeafNoIntermediate is Leaf with a chain of the leaf alone, as a server that
// forgot to configure its intermediate sends it.
func (p *PKI) LeafNoIntermediate(names ...string) tls.Certificate {
	p.t.Helper()
	return p.leaf(time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), false, names)
}

// SelfSigned returns a self-signed certificate for names.
func (p *PKI) SelfSigned(names ...string) tls.Certificate {
	p.t.Helper()
	tmpl := leafTemplate(time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), names)
	tmpl.BasicConstraintsValid = true
	c := p.sign(tmpl, nil, nil, &p.leafKey.PublicKey)
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: p.leafKey, Leaf: c}
}

// Untrusted returns a certificate for names issued by a root that RootPool
// does not hold.
func (p *PKI) Untrusted(names ...string) tls.Certificate {
	p.t.Helper()
	c := p.sign(leafTemplate(time.Now().Add(-time.Hour), time.Now().Add(90*24*time.Hour), names), p.other, p.otherKey, &p.leafKey.PublicKey)
	return tls.Certificate{Certificate: [][]byte{c.Raw, p.other.Raw}, PrivateKey: p.leafKey, Leaf: c}
}

// Expired returns a Leaf that expired a day ago.
func (p *PKI) Expired(names ...string) tls.Certificate {
	p.t.Helper()
	return p.leaf(time.Now().Add(-91*24*time.Hour), time.Now().Add(-24*time.Hour), true, names)
}

// ExpiringIn returns a Leaf whose validity ends d from now.
func (p *PKI) ExpiringIn(d time.Duration, names ...string) tls.Certificate {
	p.t.Helper()
	return p.leaf(time.Now().Add(-time.Hour), time.Now().Add(d), true, names)
}

// RootPEM returns the root CA certificate in PEM.
func (p *PKI) RootPEM() []byte { return append([]byte(nil), p.rootPEM...) }

// Root returns the root CA certificate.
func (p *PKI) Root() *x509.Certificate { return p.root }

// Intermediate returns the intermediate CA certificate.
func (p *PKI) Intermediate() *x509.Certificate { return p.inter }

// RootPool returns a pool holding only the root CA.
func (p *PKI) RootPool() *x509.CertPool { return p.rootPool.Clone() }

// WriteRootPEM writes the root CA to a file in a temporary directory and
// returns its path.
func (p *PKI) WriteRootPEM(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lab-root.pem")
	if err := os.WriteFile(path, p.rootPEM, 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return path
}

// WriteCert writes a certificate chain and its key in PEM (chain.pem,
// key.pem in a temporary directory), for real servers that read files.
func WriteCert(t testing.TB, cert tls.Certificate) (chainFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	var chain []byte
	for _, der := range cert.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	chainFile, keyFile = filepath.Join(dir, "chain.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(chainFile, chain, 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return chainFile, keyFile
}
