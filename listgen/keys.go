package listgen

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key algorithms for GenerateKey.
const (
	AlgECDSAP256 = "ecdsa-p256"
	AlgEd25519   = "ed25519"
)

// SSHNamespace is the SSHSIG namespace of list signatures and the principal
// of AllowedSignersLine.
const SSHNamespace = "starttls-preload"

// maxKeyFile bounds the key files ParsePrivateKey and ParsePublicKey read.
const maxKeyFile = 64 << 10

// GenerateKey makes a signing key: "ecdsa-p256" (also for "") or "ed25519".
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "", AlgECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("%w: algorithm %q (want %q or %q)", ErrBadKey, alg, AlgECDSAP256, AlgEd25519)
}

// checkPublic accepts the two key types lists are signed with.
func checkPublic(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: ECDSA curve %s (want P-256)", ErrBadKey, k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadKey, len(k))
		}
		return nil
	}
	return fmt.Errorf("%w: %T (want ECDSA P-256 or Ed25519)", ErrBadKey, pub)
}

// MarshalPrivateKey encodes a private key as PEM "PRIVATE KEY" (PKCS #8).
func MarshalPrivateKey(s crypto.Signer) ([]byte, error) {
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" (PKCS #8) or "EC PRIVATE KEY"
// (SEC 1, as openssl writes it) holding an ECDSA P-256 or Ed25519 key.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: key file larger than %d bytes", ErrBadKey, maxKeyFile)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q (want \"PRIVATE KEY\")", ErrBadKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrBadKey, key)
	}
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// MarshalPublicKey encodes a public key as PEM "PUBLIC KEY" (PKIX), the
// form openssl and cosign read.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// AllowedSignersLine returns the OpenSSH allowed_signers line (see
// ssh-keygen(1), ALLOWED SIGNERS) for pub, with principal and namespace
// SSHNamespace, ending in a newline:
//
//	starttls-preload namespaces="starttls-preload" ecdsa-sha2-nistp256 AAAA...
func AllowedSignersLine(pub crypto.PublicKey) (string, error) {
	if err := checkPublic(pub); err != nil {
		return "", err
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return SSHNamespace + ` namespaces="` + SSHNamespace + `" ` + strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n") + "\n", nil
}

// ParsePublicKey reads a public key from PEM "PUBLIC KEY" (PKIX), from an
// allowed_signers file (the first key line; comments and blank lines are
// skipped) or from an authorized_keys style line ("ssh-ed25519 AAAA...").
func ParsePublicKey(b []byte) (crypto.PublicKey, error) {
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%w: key file larger than %d bytes", ErrBadKey, maxKeyFile)
	}
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("%w: PEM block %q (want \"PUBLIC KEY\")", ErrBadKey, block.Type)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		if err := checkPublic(pub); err != nil {
			return nil, err
		}
		return pub, nil
	}
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		k, _, _, _, err := ssh.ParseAuthorizedKey(line)
		if err != nil {
			// allowed_signers: principals come first.
			_, rest, ok := bytes.Cut(line, []byte(" "))
			if !ok {
				return nil, fmt.Errorf("%w: not a PEM public key or an allowed_signers line", ErrBadKey)
			}
			if k, _, _, _, err = ssh.ParseAuthorizedKey(bytes.TrimSpace(rest)); err != nil {
				return nil, fmt.Errorf("%w: allowed_signers line: %v", ErrBadKey, err)
			}
		}
		ck, ok := k.(ssh.CryptoPublicKey)
		if !ok {
			return nil, fmt.Errorf("%w: SSH key type %s", ErrBadKey, k.Type())
		}
		pub := ck.CryptoPublicKey()
		if err := checkPublic(pub); err != nil {
			return nil, err
		}
		return pub, nil
	}
	return nil, fmt.Errorf("%w: no key found", ErrBadKey)
}
