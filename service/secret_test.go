package service

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "web-secret")
	first, created, err := LoadOrCreateSecret(path)
	if err != nil || !created || len(first) != secretLen {
		t.Fatalf("first run: %x, created %v, %v", first, created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("secret file: %v, %v; want mode 0600", fi, err)
	}
	again, created, err := LoadOrCreateSecret(path)
	if err != nil || created || !bytes.Equal(again, first) {
		t.Errorf("second run: %x, created %v, %v; want the same secret read back", again, created, err)
	}
	other, _, err := LoadOrCreateSecret(filepath.Join(t.TempDir(), "web-secret"))
	if err != nil || bytes.Equal(other, first) {
		t.Errorf("another data directory: %x, %v; want another secret", other, err)
	}
}

// TestLoadOrCreateSecretConcurrent: processes starting at once end with
// one secret.
func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "web-secret")
	var wg sync.WaitGroup
	got := make([][]byte, 8)
	for i := range got {
		wg.Go(func() {
			s, _, err := LoadOrCreateSecret(path)
			if err != nil {
				t.Error(err)
			}
			got[i] = s
		})
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("starter %d read %x, starter 0 %x", i, got[i], got[0])
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d files, want the secret alone (no temporary file left)", len(ents))
	}
}

// TestLoadOrCreateSecretDamaged: a file that holds no secret is an error
// and is left as it is.
func TestLoadOrCreateSecretDamaged(t *testing.T) {
	for name, content := range map[string]string{
		"empty":     "",
		"not hex":   "this is not a secret at all, not even in hexadecimal form!!\n",
		"too short": "00112233445566778899aabbccddeeff\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "web-secret")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateSecret(path)
			if !errors.Is(err, ErrSecret) {
				t.Errorf("err = %v, want ErrSecret", err)
			}
			if b, _ := os.ReadFile(path); string(b) != content {
				t.Errorf("the damaged file was replaced by %q", b)
			}
		})
	}
}
