package admission

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

// ErrKeyFile: the signing key file exists but holds no usable key.
var ErrKeyFile = errors.New("admission: signing key file is damaged")

// LoadOrCreateKey reads the list signing key at path, creating it (mode
// 0600, algorithm alg, "" for the default) when the file does not exist.
// created reports a new key.
//
// The key is written to a temporary file in the same directory, fsynced,
// then linked into place with link(2), which fails if path exists: path
// never holds a partial key, whatever crashes, and of processes starting
// at once one creates the key and the others read it. A key file that
// exists but is empty or damaged is an error (ErrKeyFile), never replaced.
func LoadOrCreateKey(path, alg string) (key crypto.Signer, created bool, err error) {
	key, err = loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
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
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("admission: signing key: %w", err)
	}
	created, err = publish.CreateFileOnce(path, pem, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
	}
	if !created {
		// Another process created its key first: use that one.
		key, err := loadKey(path)
		return key, false, err
	}
	return key, true, nil
}

// loadKey reads and parses the key at path; the error wraps
// fs.ErrNotExist when there is no file.
func loadKey(path string) (crypto.Signer, error) {
	b, err := publish.ReadFileLimit(path, listgen.MaxKeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("admission: signing key: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("%w: %s is empty; restore it from a backup, or remove it to create a new key (which every client must then pin)", ErrKeyFile, path)
	}
	key, err := listgen.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w; restore it from a backup, or remove it to create a new key (which every client must then pin)", ErrKeyFile, path, err)
	}
	return key, nil
}
