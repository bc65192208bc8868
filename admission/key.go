package admission

import (
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// LoadOrCreateKey reads the list signing key at path, creating it (mode
// 0600, algorithm alg, "" for the default) when the file does not exist.
// created reports a new key.
func LoadOrCreateKey(path, alg string) (key crypto.Signer, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := listgen.ParsePrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("admission: signing key %s: %w", path, err)
		}
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("admission: signing key: %w", err)
	}
	if alg == "" {
		alg = "ecdsa-p256"
	}
	key, err = listgen.GenerateKey(alg)
	if err != nil {
		return nil, false, fmt.Errorf("admission: generating the signing key: %w", err)
	}
	pem, err := listgen.MarshalPrivateKey(key)
	if err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("admission: signing key: %w", err)
	}
	// O_EXCL: two processes starting at once never overwrite each other's
	// key; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadOrCreateKey(path, alg)
	}
	if err != nil {
		return nil, false, fmt.Errorf("admission: signing key: %w", err)
	}
	if _, err := f.Write(pem); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
	}
	return key, true, nil
}
