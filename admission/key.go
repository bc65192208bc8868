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
	tmp, err := writeKeyTemp(path, pem)
	if err != nil {
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		// Another process linked its key first: use that one.
		key, err := loadKey(path)
		return key, false, err
	} else if err != nil {
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return nil, false, fmt.Errorf("admission: writing the signing key: %w", err)
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

// writeKeyTemp writes pem to a new file (mode 0600) beside path, fsynced,
// and returns its name. A temporary file left by a crash is never read.
func writeKeyTemp(path string, pem []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	err = f.Chmod(0o600)
	if err == nil {
		_, err = f.Write(pem)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// syncDir makes the new link in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
