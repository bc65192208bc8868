package listgen

import (
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
)

// VerifyParse checks the given signatures over data (sig as VerifyBlob
// takes it, sshsig as VerifySSH takes it; either may be nil, not both) and
// parses data, returning the list only when every given signature verifies
// and the list parses. The signatures are checked while the list is parsed
// (Parse is bounded and safe on any input, and its result is dropped on a
// bad signature), so a client pays for the slower of the two, not the sum.
// A bad signature is reported before a parse error: unsigned bytes are not
// worth a diagnosis.
func VerifyParse(pub crypto.PublicKey, data, sig, sshsig []byte) (*List, error) {
	if sig == nil && sshsig == nil {
		return nil, fmt.Errorf("%w: no signature given", ErrBadSignature)
	}
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	verr := make(chan error, 1)
	go func() {
		sum := sha256.Sum256(data) // once, for both signatures
		var errs []error
		if sig != nil {
			errs = append(errs, verifyBlob(pub, data, sig, sum[:]))
		}
		if sshsig != nil {
			errs = append(errs, verifySSH(pub, data, sshsig, sum[:]))
		}
		verr <- errors.Join(errs...)
	}()
	l, perr := Parse(data)
	if err := <-verr; err != nil {
		return nil, err
	}
	if perr != nil {
		return nil, perr
	}
	return l, nil
}
