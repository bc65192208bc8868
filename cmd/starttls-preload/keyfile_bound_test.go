package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// endlessFile is a named pipe that yields far more than any key or
// signature file may hold and never ends: a reader that does not bound
// its read blocks on it forever, a bounded one stops and refuses it.
func endlessFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "endless")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		w, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.Write([]byte(strings.Repeat("# comment line\n", 1<<16))) // about 1 MiB; fails once the reader is gone
		<-stop
	}()
	t.Cleanup(func() {
		close(stop)
		// Unblock a writer still waiting for a reader to open the pipe.
		if r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		<-done
	})
	return p
}

// TestKeyAndSignatureFilesAreReadBounded: the commands read key files and
// signature files up to a bound and refuse larger ones, whatever the file
// is (a pipe, a device), instead of reading it into memory to the end.
func TestKeyAndSignatureFilesAreReadBounded(t *testing.T) {
	keyDir, _ := keygenKeys(t, listgen.AlgEd25519)
	pub := filepath.Join(keyDir, keygenPublic)
	list := filepath.Join(t.TempDir(), "policy-list.json")
	if err := os.WriteFile(list, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    func(endless string) []string
		wantErr string
	}{
		{"verify --pubkey", func(e string) []string { return []string{"verify", "--pubkey", e, list} }, "larger than"},
		{"verify --sig", func(e string) []string { return []string{"verify", "--pubkey", pub, "--sig", e, list} }, "larger than"},
		{"verify --sshsig", func(e string) []string { return []string{"verify", "--pubkey", pub, "--sshsig", e, list} }, "larger than"},
		{"fetch --pubkey", func(e string) []string {
			return []string{"fetch", "--url", "http://127.0.0.1:9/policy-list.json", "--pubkey", e,
				"--postfix-map", filepath.Join(t.TempDir(), "map"), "--state-dir", t.TempDir()}
		}, "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := execCLI(t, tt.args(endlessFile(t))...)
			if code == exitOK || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want a failure containing %q", code, errOut, tt.wantErr)
			}
		})
	}
	t.Run("list.next_pubkey", func(t *testing.T) {
		k, err := listgen.GenerateKey(listgen.AlgEd25519)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := publishedKeys(k.Public(), endlessFile(t)); err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("publishedKeys: %v, want a key file larger than the bound refused", err)
		}
	})
}
