package listgen

import (
	"crypto"
	"crypto/sha256"
	"sync"
)

// Publication is what is published for one list: its canonical bytes,
// both signatures over them and both snippets.
type Publication struct {
	List    []byte // Marshal(l)
	Sig     []byte // SignBlob(s, List)
	SSHSig  []byte // SignSSH(s, List)
	Postfix []byte // the first result of Render(l, o)
	Exim    []byte // the second result of Render(l, o)
}

// Publish returns what Marshal, SignBlob, SignSSH and Render return, with
// the same errors, doing the shared work once: the domains are sorted and
// checked once for the list and both snippets, the list is hashed once
// for both signatures, and the hash and the two snippets are computed at
// the same time.
func Publish(l *List, s crypto.Signer, o RenderOptions) (*Publication, error) {
	if err := checkTop(l); err != nil {
		return nil, err
	}
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	domains := sortedPolicies(l.Policies)
	data, err := marshalSorted(l, domains)
	if err != nil {
		return nil, err
	}
	pub := &Publication{List: data}
	var sum256 [sha256.Size]byte
	var wg sync.WaitGroup
	wg.Go(func() { sum256 = sha256.Sum256(data) })
	if expired(l, o) {
		pub.Postfix, pub.Exim = EmptyPolicy(expiredReason(l))
	} else {
		// Marshal accepted every entry: only aliases remain to resolve.
		es, skipped := resolve(l, domains, false)
		wg.Go(func() { pub.Exim = renderExim(l, o, es, skipped) })
		pub.Postfix = renderPostfix(l, o, es, skipped)
	}
	wg.Wait()
	if pub.Sig, err = signBlob(s, data, sum256[:]); err != nil {
		return nil, err
	}
	if pub.SSHSig, err = signSSH(s, data, sum256[:]); err != nil {
		return nil, err
	}
	return pub, nil
}
