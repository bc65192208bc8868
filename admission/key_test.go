package admission

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
)

func publicPEM(t *testing.T, k crypto.Signer) string {
	t.Helper()
	b, err := listgen.MarshalPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Processes starting at the same moment (here goroutines) all end with
// the one key that was written, never an empty or partial file, and only
// one of them reports that it created it.
func TestLoadOrCreateKeyConcurrent(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "keys", "list-signing.key")
		const n = 16
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			keys    [n]crypto.Signer
			created [n]bool
			errs    [n]error
		)
		for i := range n {
			wg.Go(func() {
				<-start
				keys[i], created[i], errs[i] = LoadOrCreateKey(path, "")
			})
		}
		close(start)
		wg.Wait()
		ncreated := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("round %d: %v", round, errs[i])
			}
			if created[i] {
				ncreated++
			}
			if publicPEM(t, keys[i]) != publicPEM(t, keys[0]) {
				t.Fatalf("round %d: two keys", round)
			}
		}
		if ncreated != 1 {
			t.Fatalf("round %d: %d creators", round, ncreated)
		}
		onDisk, _, err := LoadOrCreateKey(path, "")
		if err != nil || publicPEM(t, onDisk) != publicPEM(t, keys[0]) {
			t.Fatalf("round %d: the key on disk is another: %v", round, err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: %v %v", round, fi.Mode(), err)
		}
		// No temporary file is left behind.
		if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
			t.Fatalf("round %d: the key's directory holds %d files", round, len(ents))
		}
	}
}

// A key file that exists but is empty or cut short (what a crash while it
// was written used to leave) is an error naming the file, never replaced
// by a new key in silence.
func TestLoadOrCreateKeyDamaged(t *testing.T) {
	k, err := listgen.GenerateKey("ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	full, err := listgen.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"empty":     nil,
		"truncated": full[:len(full)/2],
		"blank":     []byte("\n"),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "list-signing.key")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, created, err := LoadOrCreateKey(path, "")
			if !errors.Is(err, ErrKeyFile) || created {
				t.Fatalf("created %v, err %v", created, err)
			}
			if msg := err.Error(); !strings.Contains(msg, path) || strings.Contains(msg, "\n") {
				t.Errorf("error does not name the file on one line: %q", msg)
			}
			if b, _ := os.ReadFile(path); string(b) != string(content) {
				t.Error("the damaged key file was changed")
			}
		})
	}
}

// A temporary file left by a creator that crashed changes nothing: the
// next start creates the key as if it were not there.
func TestLoadOrCreateKeyStaleTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "list-signing.key")
	stale := filepath.Join(dir, ".list-signing.key.tmp-123456")
	if err := os.WriteFile(stale, []byte("-----BEGIN PRIV"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, created, err := LoadOrCreateKey(path, "")
	if err != nil || !created {
		t.Fatalf("created %v, err %v", created, err)
	}
	again, created, err := LoadOrCreateKey(path, "")
	if err != nil || created || publicPEM(t, again) != publicPEM(t, k) {
		t.Fatalf("second start: created %v, err %v", created, err)
	}
}
