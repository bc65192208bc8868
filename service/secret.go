package service

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/starttls-preload/starttls-preload/publish"
)

// ErrSecret: the web door's secret file (web.secret_file) cannot be read
// or created, or holds something else than a secret.
var ErrSecret = errors.New("service: web.secret_file")

// secretLen is the length of a secret in bytes (256 bits); the file holds
// it in hexadecimal and a newline.
const secretLen = 32

// LoadOrCreateSecret reads the secret at path, creating it (mode 0600,
// 32 bytes from crypto/rand, written in hexadecimal) when the file does
// not exist, with publish.CreateFileOnce: of processes starting at once
// one creates it and all read the same. The web door signs its forms'
// CSRF tokens with a key derived from it, so that a form loaded before a
// restart still posts after it, and several serve processes given the
// same file accept each other's forms. A file that exists but holds no
// secret is an error, never replaced. created reports a new secret.
func LoadOrCreateSecret(path string) (secret []byte, created bool, err error) {
	secret, err = readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, false, err
	}
	b := make([]byte, secretLen)
	rand.Read(b) // never fails (crypto/rand)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	created, err = publish.CreateFileOnce(path, []byte(hex.EncodeToString(b)+"\n"), 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	if !created { // another process created it first
		secret, err = readSecret(path)
		return secret, false, err
	}
	return b, true, nil
}

// readSecret reads a secret file; the error wraps fs.ErrNotExist when
// there is none.
func readSecret(path string) ([]byte, error) {
	b, err := publish.ReadFileLimit(path, 4096)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSecret, err)
	}
	s, err := hex.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil || len(s) < secretLen {
		return nil, fmt.Errorf("%w: %s does not hold a secret of at least %d bytes in hexadecimal; remove it to create a new one (forms loaded before then must be reloaded)", ErrSecret, path, secretLen)
	}
	return s, nil
}
