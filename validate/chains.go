package validate

import (
	"crypto/sha256"
	"crypto/x509"
	"sync"
	"time"
)

// chainCache remembers which certificate chains verified to the
// validator's roots, so that a chain presented by many MX hosts is
// verified once. Mail providers serve one certificate on thousands of
// distinct MX host names (customer-specific names under one wildcard),
// and each of those checks would otherwise repeat the same signature
// verifications.
//
// Only successes are kept, with the window in which they hold: a chain
// that verified at some time verifies at any other time inside the
// validity periods of the certificates on the path that verified it, for
// the same roots and options, since nothing else x509.Verify looks at
// changes. The host name is not part of the verification; checkCert
// matches it for every host. Failures are not kept: they are rare and
// must report their own reason.
type chainCache struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]chainWindow
	max     int
}

// chainWindow is when a remembered verification holds: [from, until].
type chainWindow struct{ from, until time.Time }

// chainCacheSize bounds the chains remembered. When it is reached the
// cache starts afresh; verifying again is always correct.
const chainCacheSize = 4096

func newChainCache(max int) *chainCache {
	return &chainCache{entries: make(map[[sha256.Size]byte]chainWindow), max: max}
}

// chainKey identifies the certificates as served, in order.
func chainKey(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [4]byte
	for _, c := range chain {
		l := len(c.Raw)
		n[0], n[1], n[2], n[3] = byte(l>>24), byte(l>>16), byte(l>>8), byte(l)
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// verify reports whether chain[0] verifies at time at to the roots with
// the rest of chain as intermediates and server-auth usage, and why not.
func (cc *chainCache) verify(roots *x509.CertPool, chain []*x509.Certificate, at time.Time) error {
	key := chainKey(chain)
	cc.mu.Lock()
	w, ok := cc.entries[key]
	cc.mu.Unlock()
	if ok && !at.Before(w.from) && !at.After(w.until) {
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// Only the intermediates the server sent are used, as senders do.
	paths, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   at,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}
	// The widest window among the paths found: any one of them suffices.
	var best chainWindow
	for i, p := range paths {
		w := chainWindow{from: p[0].NotBefore, until: p[0].NotAfter}
		for _, c := range p[1:] {
			if c.NotBefore.After(w.from) {
				w.from = c.NotBefore
			}
			if c.NotAfter.Before(w.until) {
				w.until = c.NotAfter
			}
		}
		if i == 0 || w.until.Sub(w.from) > best.until.Sub(best.from) {
			best = w
		}
	}
	cc.mu.Lock()
	if len(cc.entries) >= cc.max {
		clear(cc.entries)
	}
	cc.entries[key] = best
	cc.mu.Unlock()
	return nil
}
