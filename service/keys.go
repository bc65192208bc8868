package service

import (
	"crypto"
	"errors"
	"fmt"
	"log/slog"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

// Errors of the keys.
var (
	// ErrSigningKey: the list signing key cannot be read or created.
	ErrSigningKey = errors.New("service: list signing key")
	// ErrNextKey: the next-key file (list.next_pubkey) cannot be read or
	// holds something other than public keys.
	ErrNextKey = errors.New("service: list.next_pubkey")
)

// LoadKeys loads the list signing key at keyPath, creating it (mode 0600)
// when the file does not exist, and the key files to publish: the signing
// key's public key, then the keys of the nextPath file (list.next_pubkey),
// announced before an operator switches to them. created reports a new
// signing key. Errors wrap ErrSigningKey or ErrNextKey.
func LoadKeys(keyPath, nextPath string, log *slog.Logger) (k Keys, created bool, err error) {
	if log == nil {
		log = slog.Default()
	}
	signer, created, err := admission.LoadOrCreateKey(keyPath, "")
	if err != nil {
		return Keys{}, false, fmt.Errorf("%w: %w", ErrSigningKey, err)
	}
	keys, err := PublishedKeys(signer.Public(), nextPath, log)
	if err != nil {
		return Keys{}, false, err
	}
	k.Signer = signer
	if k.PubPEM, err = listgen.MarshalPublicKeys(keys); err != nil {
		return Keys{}, false, fmt.Errorf("%w: %w", ErrSigningKey, err)
	}
	if k.Allowed, err = listgen.AllowedSigners(keys); err != nil {
		return Keys{}, false, fmt.Errorf("%w: %w", ErrSigningKey, err)
	}
	return k, created, nil
}

// PublishedKeys is the signing key's public key followed by the keys of the
// nextPath file, if one is named (without repeating the signing key, so
// that the file may stay named after the switch). Errors wrap ErrNextKey.
func PublishedKeys(signing crypto.PublicKey, nextPath string, log *slog.Logger) ([]crypto.PublicKey, error) {
	if log == nil {
		log = slog.Default()
	}
	keys := []crypto.PublicKey{signing}
	if nextPath == "" {
		return keys, nil
	}
	b, err := publish.ReadFileLimit(nextPath, listgen.MaxKeyFile)
	switch {
	case errors.Is(err, publish.ErrTooLarge):
		return nil, fmt.Errorf("%w %w", ErrNextKey, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrNextKey, err)
	}
	next, err := listgen.ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("%w %s: %w", ErrNextKey, nextPath, err)
	}
	cur := listgen.Fingerprint(signing)
	for _, k := range next {
		if fp := listgen.Fingerprint(k); fp != cur {
			keys = append(keys, k)
			log.Info("announcing the next list signing key", "key", fp, "file", nextPath)
		}
	}
	if len(keys) > listgen.MaxKeys {
		return nil, fmt.Errorf("%w %s: the signing key and the next ones are more than %d keys", ErrNextKey, nextPath, listgen.MaxKeys)
	}
	return keys, nil
}
