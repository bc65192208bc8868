package listgen

import (
	"crypto"
	"fmt"
)

// SignatureError says which of a list's signatures did not verify: Sig is
// "sig" (FILE.sig) or "sshsig" (FILE.sshsig). Err wraps ErrBadSignature,
// or ErrBadKey for an unsupported key.
type SignatureError struct {
	Sig string
	Err error
}

func (e *SignatureError) Error() string { return e.Sig + ": " + e.Err.Error() }
func (e *SignatureError) Unwrap() error { return e.Err }

// Verify checks the given signatures over data with a set of trusted keys
// (as ParsePublicKeys returns them) and returns the key that made them.
// sig is a FILE.sig as VerifyBlob takes it, sshsig a FILE.sshsig as
// VerifySSH takes it; either may be nil, not both.
//
// The rule: every signature given must verify, and all of them under one
// and the same trusted key. The SSHSIG names its key, so only that key is
// tried for it, and then for FILE.sig; a FILE.sig alone is tried with each
// trusted key of its kind (ECDSA or Ed25519) in order. The data is hashed
// with SHA-256 at most once, when an ECDSA key or a sha256 SSHSIG needs
// it, whatever the number of keys; each Ed25519 key tried on a FILE.sig
// reads the data once more (Ed25519 hashes the key with the message), so
// a FILE.sig by the first key given is the cheapest to check.
//
// Failures are *SignatureError wrapping ErrBadSignature (or ErrBadKey).
func Verify(keys []crypto.PublicKey, data, sig, sshsig []byte) (crypto.PublicKey, error) {
	if err := checkVerify(keys, sig, sshsig); err != nil {
		return nil, err
	}
	return verifyKeys(keys, data, sig, sshsig)
}

// checkVerify checks Verify's arguments other than the data.
func checkVerify(keys []crypto.PublicKey, sig, sshsig []byte) error {
	if sig == nil && sshsig == nil {
		return fmt.Errorf("%w: no signature given", ErrBadSignature)
	}
	if len(keys) == 0 {
		return fmt.Errorf("%w: no trusted key", ErrBadKey)
	}
	if len(keys) > MaxKeys {
		return fmt.Errorf("%w: more than %d trusted keys", ErrBadKey, MaxKeys)
	}
	for _, k := range keys {
		if err := checkPublic(k); err != nil {
			return err
		}
	}
	return nil
}

// verifyKeys is Verify after checkVerify.
func verifyKeys(keys []crypto.PublicKey, data, sig, sshsig []byte) (crypto.PublicKey, error) {
	sum256 := &dataSum{data: data} // once, for both signatures and every key, if at all
	var by crypto.PublicKey
	if sshsig != nil {
		k, err := verifySSH(keys, data, sshsig, sum256)
		if err != nil {
			return nil, &SignatureError{Sig: "sshsig", Err: err}
		}
		by = k
	}
	if sig != nil {
		candidates := keys
		if by != nil {
			candidates = []crypto.PublicKey{by} // one key for both signatures
		}
		k, err := verifyBlob(candidates, data, sig, sum256)
		if err != nil {
			if by != nil && len(keys) > 1 {
				err = fmt.Errorf("%w (not by the key of the SSH signature, %s)", err, Fingerprint(by))
			}
			return nil, &SignatureError{Sig: "sig", Err: err}
		}
		by = k
	}
	return by, nil
}

// VerifyParse checks the given signatures over data with the trusted keys
// as Verify does, and parses data, returning the list and the key that
// signed it only when the signatures verify and the list parses. The
// signatures are checked while the list is parsed (Parse is bounded and
// safe on any input, and its result is dropped on a bad signature), so a
// client pays for the slower of the two, not the sum. A bad signature is
// reported before a parse error: unsigned bytes are not worth a diagnosis.
func VerifyParse(keys []crypto.PublicKey, data, sig, sshsig []byte) (*List, crypto.PublicKey, error) {
	if err := checkVerify(keys, sig, sshsig); err != nil {
		return nil, nil, err
	}
	type result struct {
		key crypto.PublicKey
		err error
	}
	verr := make(chan result, 1)
	go func() {
		k, err := verifyKeys(keys, data, sig, sshsig)
		verr <- result{k, err}
	}()
	l, perr := Parse(data)
	r := <-verr
	if r.err != nil {
		return nil, nil, r.err
	}
	if perr != nil {
		return nil, nil, perr
	}
	return l, r.key, nil
}
