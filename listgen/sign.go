package listgen

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
	"golang.org/x/crypto/ssh"
)

// maxSigFile bounds the signature files the verifiers read.
const maxSigFile = 16 << 10

// SignBlob returns the contents of FILE.sig for data: the standard base64
// (no line breaks, no trailing newline) of an ECDSA P-256 SHA-256 signature
// in ASN.1 DER, or of a raw 64-byte Ed25519 signature, made with sigstore's
// pkg/signature. `openssl dgst -sha256 -verify PUB -signature <(base64 -d
// FILE.sig) FILE` (ECDSA) and `cosign verify-blob --key PUB --signature
// FILE.sig FILE` accept it.
func SignBlob(s crypto.Signer, data []byte) ([]byte, error) {
	return signBlob(s, data, nil)
}

// signBlob is SignBlob; sum256, when not nil, is the SHA-256 of data,
// used for ECDSA instead of hashing data again (Ed25519 signs data itself).
func signBlob(s crypto.Signer, data, sum256 []byte) ([]byte, error) {
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	sv, err := signature.LoadSigner(s, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	var opts []signature.SignOption
	if _, ok := s.Public().(*ecdsa.PublicKey); ok && sum256 != nil {
		opts = append(opts, options.WithDigest(sum256))
	}
	sig, err := sv.SignMessage(bytes.NewReader(data), opts...)
	if err != nil {
		return nil, fmt.Errorf("listgen: signing: %w", err)
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(len(sig)))
	base64.StdEncoding.Encode(out, sig)
	return out, nil
}

// VerifyBlob checks a FILE.sig (as SignBlob writes it; surrounding white
// space is ignored) over data. ECDSA signatures must be ASN.1 DER. Any
// failure is ErrBadSignature, except an unsupported key (ErrBadKey).
func VerifyBlob(pub crypto.PublicKey, data, sig []byte) error {
	if err := checkPublic(pub); err != nil {
		return err
	}
	_, err := verifyBlob([]crypto.PublicKey{pub}, data, sig, nil)
	return err
}

// verifyBlob checks sig with each of keys (checked already) that could
// have made it and returns the first that did. sum256, when not nil, gives
// the SHA-256 of data, used for ECDSA instead of hashing data again, so
// that trying several ECDSA keys costs one hash; an Ed25519 signature
// covers data itself, so each Ed25519 key tried reads all of data.
func verifyBlob(keys []crypto.PublicKey, data, sig []byte, sum256 *dataSum) (crypto.PublicKey, error) {
	if len(sig) > maxSigFile {
		return nil, fmt.Errorf("%w: signature file too large", ErrBadSignature)
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(sig)))
	if err != nil {
		return nil, fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	// sigstore also takes raw r||s for ECDSA; openssl only DER: insist on DER.
	var rs struct{ R, S *big.Int }
	rest, derErr := asn1.Unmarshal(raw, &rs)
	isDER := derErr == nil && len(rest) == 0
	tried := 0
	for _, pub := range keys {
		_, isECDSA := pub.(*ecdsa.PublicKey)
		if isECDSA && !isDER || !isECDSA && len(raw) != ed25519.SignatureSize {
			continue // this kind of key cannot have made it
		}
		tried++
		v, err := signature.LoadVerifier(pub, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		var opts []signature.VerifyOption
		if isECDSA && sum256 != nil {
			opts = append(opts, options.WithDigest(sum256.get()))
		}
		if v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(data), opts...) == nil {
			return pub, nil
		}
	}
	switch {
	case tried > 0 && len(keys) == 1:
		return nil, ErrBadSignature
	case tried > 0:
		return nil, fmt.Errorf("%w: made by none of the %d trusted keys", ErrBadSignature, len(keys))
	case len(keys) == 1:
		if _, ok := keys[0].(*ecdsa.PublicKey); ok {
			return nil, fmt.Errorf("%w: ECDSA signature is not ASN.1 DER", ErrBadSignature)
		}
		return nil, fmt.Errorf("%w: not an Ed25519 signature", ErrBadSignature)
	}
	return nil, fmt.Errorf("%w: neither an ECDSA (ASN.1 DER) nor an Ed25519 signature of a trusted key", ErrBadSignature)
}

// dataSum is the SHA-256 of data, computed when first needed (an Ed25519
// FILE.sig alone never needs it) and then once for every signature and key.
type dataSum struct {
	data []byte
	sum  []byte
}

func (d *dataSum) get() []byte {
	if d.sum == nil {
		s := sha256.Sum256(d.data)
		d.sum = s[:]
	}
	return d.sum
}

// SSHSIG (OpenSSH PROTOCOL.sshsig).
const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigHash    = "sha256" // one SHA-256 of the list serves both signatures
	armorBegin    = "-----BEGIN SSH SIGNATURE-----"
	armorEnd      = "-----END SSH SIGNATURE-----"
)

// sshsigSigned is the blob that the SSH key actually signs
// (PROTOCOL.sshsig, "Signed Data, of which the signature goes into the blob").
type sshsigSigned struct {
	Magic     [6]byte
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      string
}

// sshsigBlob is the envelope inside the armour.
type sshsigBlob struct {
	Magic     [6]byte
	Version   uint32
	PublicKey string
	Namespace string
	Reserved  string
	HashAlg   string
	Signature string
}

// sshsigMessage returns the signed data of an SSHSIG over data; sum, when
// not nil, is the hash of data with hashAlg, computed already.
func sshsigMessage(hashAlg string, data, sum []byte) ([]byte, error) {
	if hashAlg != "sha512" && hashAlg != "sha256" {
		return nil, fmt.Errorf("%w: SSHSIG hash %q", ErrBadSignature, hashAlg)
	}
	if sum == nil {
		if hashAlg == "sha512" {
			s := sha512.Sum512(data)
			sum = s[:]
		} else {
			s := sha256.Sum256(data)
			sum = s[:]
		}
	}
	m := sshsigSigned{Namespace: SSHNamespace, HashAlg: hashAlg, Hash: string(sum)}
	copy(m.Magic[:], sshsigMagic)
	return ssh.Marshal(m), nil
}

// SignSSH returns the contents of FILE.sshsig for data: an armoured OpenSSH
// signature (namespace "starttls-preload", hash sha256) made with
// golang.org/x/crypto/ssh, as `ssh-keygen -Y sign` writes it, which
// `ssh-keygen -Y verify -f allowed_signers -I starttls-preload -n
// starttls-preload -s FILE.sshsig < FILE` accepts.
func SignSSH(s crypto.Signer, data []byte) ([]byte, error) {
	return signSSH(s, data, nil)
}

// signSSH is SignSSH; sum256, when not nil, is the SHA-256 of data.
func signSSH(s crypto.Signer, data, sum256 []byte) ([]byte, error) {
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromSigner(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	msg, err := sshsigMessage(sshsigHash, data, sum256)
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(rand.Reader, msg)
	if err != nil {
		return nil, fmt.Errorf("listgen: signing: %w", err)
	}
	blob := sshsigBlob{
		Version:   sshsigVersion,
		PublicKey: string(signer.PublicKey().Marshal()),
		Namespace: SSHNamespace,
		HashAlg:   sshsigHash,
		Signature: string(ssh.Marshal(sig)),
	}
	copy(blob.Magic[:], sshsigMagic)
	return armor(ssh.Marshal(blob)), nil
}

// armor wraps b as ssh-keygen does: base64 in lines of 70 characters.
func armor(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	out.WriteString(armorBegin + "\n")
	for len(enc) > 70 {
		out.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	out.WriteString(enc + "\n" + armorEnd + "\n")
	return out.Bytes()
}

func dearmor(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	body, ok := bytes.CutPrefix(b, []byte(armorBegin))
	if !ok {
		return nil, errors.New("no BEGIN SSH SIGNATURE line")
	}
	body, ok = bytes.CutSuffix(body, []byte(armorEnd))
	if !ok {
		return nil, errors.New("no END SSH SIGNATURE line")
	}
	var enc []byte
	for line := range bytes.Lines(body) {
		enc = append(enc, bytes.TrimSpace(line)...)
	}
	return base64.StdEncoding.DecodeString(string(enc))
}

// VerifySSH checks a FILE.sshsig over data: the armoured SSHSIG must be
// version 1, in namespace "starttls-preload", made by pub, with hash sha512
// or sha256. Any failure is ErrBadSignature, except an unsupported key
// (ErrBadKey).
func VerifySSH(pub crypto.PublicKey, data, sshsig []byte) error {
	if err := checkPublic(pub); err != nil {
		return err
	}
	_, err := verifySSH([]crypto.PublicKey{pub}, data, sshsig, nil)
	return err
}

// verifySSH checks sshsig with the one of keys (checked already) that it
// names, and returns that key. sum256, when not nil, gives the SHA-256 of
// data, used when the signature's hash is sha256; the data is hashed at
// most once whatever the number of keys.
func verifySSH(keys []crypto.PublicKey, data, sshsig []byte, sum256 *dataSum) (crypto.PublicKey, error) {
	if len(sshsig) > maxSigFile {
		return nil, fmt.Errorf("%w: signature file too large", ErrBadSignature)
	}
	raw, err := dearmor(sshsig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	var blob sshsigBlob
	if err := ssh.Unmarshal(raw, &blob); err != nil {
		return nil, fmt.Errorf("%w: malformed SSHSIG: %v", ErrBadSignature, err)
	}
	switch {
	case string(blob.Magic[:]) != sshsigMagic:
		return nil, fmt.Errorf("%w: not an SSHSIG", ErrBadSignature)
	case blob.Version != sshsigVersion:
		return nil, fmt.Errorf("%w: SSHSIG version %d", ErrBadSignature, blob.Version)
	case blob.Namespace != SSHNamespace:
		return nil, fmt.Errorf("%w: namespace %q, want %q", ErrBadSignature, blob.Namespace, SSHNamespace)
	}
	// The SSHSIG names its key: only that key, if trusted, is tried.
	var (
		pub  crypto.PublicKey
		want ssh.PublicKey
	)
	for _, k := range keys {
		sk, err := ssh.NewPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		if bytes.Equal([]byte(blob.PublicKey), sk.Marshal()) {
			pub, want = k, sk
			break
		}
	}
	if want == nil {
		if len(keys) == 1 {
			return nil, fmt.Errorf("%w: made by another key", ErrBadSignature)
		}
		return nil, fmt.Errorf("%w: made by a key that is not one of the %d trusted keys", ErrBadSignature, len(keys))
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal([]byte(blob.Signature), &sig); err != nil {
		return nil, fmt.Errorf("%w: malformed signature: %v", ErrBadSignature, err)
	}
	// x/crypto/ssh keeps what follows the blob in Rest (security keys put
	// flags and counter there) and plain keys ignore it; OpenSSH refuses
	// it, and so must we, or one signature would have many encodings.
	if len(sig.Rest) != 0 {
		return nil, fmt.Errorf("%w: malformed signature: %d bytes after the signature blob", ErrBadSignature, len(sig.Rest))
	}
	if sig.Format != want.Type() {
		return nil, fmt.Errorf("%w: signature format %q for a %s key", ErrBadSignature, sig.Format, want.Type())
	}
	var sum []byte
	if blob.HashAlg == "sha256" && sum256 != nil {
		sum = sum256.get()
	}
	msg, err := sshsigMessage(blob.HashAlg, data, sum)
	if err != nil {
		return nil, err
	}
	if err := want.Verify(msg, &sig); err != nil {
		return nil, ErrBadSignature
	}
	return pub, nil
}
