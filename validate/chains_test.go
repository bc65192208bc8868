package validate

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
)

func parsedChain(t *testing.T, c tls.Certificate) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	for _, der := range c.Certificate {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

// TestChainCache: a remembered verification is used only for the same
// certificates in the same order and only inside the window in which it
// holds; a chain that fails is verified (and fails) every time.
func TestChainCache(t *testing.T) {
	pki := lab.NewPKI(t)
	roots := pki.RootPool()
	now := time.Now()
	good := parsedChain(t, pki.Leaf("mx.example"))
	alone := good[:1] // the same leaf without its intermediate
	untrusted := parsedChain(t, pki.Untrusted("mx.example"))

	cc := newChainCache(2)
	if err := cc.verify(roots, good, now); err != nil {
		t.Fatalf("good chain: %v", err)
	}
	if len(cc.entries) != 1 {
		t.Fatalf("%d entries after one success, want 1", len(cc.entries))
	}
	if err := cc.verify(roots, good, now.Add(time.Minute)); err != nil {
		t.Fatalf("good chain again: %v", err)
	}
	if err := cc.verify(roots, alone, now); err == nil {
		t.Fatal("the leaf without its intermediate verified: the remembered chain was used for another one")
	}
	for range 2 {
		if err := cc.verify(roots, untrusted, now); err == nil {
			t.Fatal("untrusted chain verified")
		}
	}
	if len(cc.entries) != 1 {
		t.Fatalf("%d entries, want 1: failures must not be kept", len(cc.entries))
	}
	// Outside the leaf's validity the remembered success does not hold.
	if err := cc.verify(roots, good, good[0].NotAfter.Add(time.Hour)); err == nil {
		t.Fatal("verified after the leaf's expiry")
	}
	if err := cc.verify(roots, good, good[0].NotBefore.Add(-time.Hour)); err == nil {
		t.Fatal("verified before the leaf's validity")
	}
	// The cache stays bounded.
	other := parsedChain(t, pki.Leaf("mx2.example"))
	third := parsedChain(t, pki.Leaf("mx3.example"))
	for _, c := range [][]*x509.Certificate{other, third} {
		if err := cc.verify(roots, c, now); err != nil {
			t.Fatal(err)
		}
	}
	if len(cc.entries) > 2 {
		t.Fatalf("%d entries, bound is 2", len(cc.entries))
	}
}

// TestChainKey: the key covers every certificate and the order.
func TestChainKey(t *testing.T) {
	pki := lab.NewPKI(t)
	c := parsedChain(t, pki.Leaf("mx.example"))
	swapped := []*x509.Certificate{c[1], c[0]}
	if chainKey(c) == chainKey(c[:1]) || chainKey(c) == chainKey(swapped) {
		t.Fatal("distinct chains share a key")
	}
	if chainKey(c) != chainKey(parsedChain(t, tls.Certificate{Certificate: [][]byte{c[0].Raw, c[1].Raw}})) {
		t.Fatal("the same chain has two keys")
	}
}
