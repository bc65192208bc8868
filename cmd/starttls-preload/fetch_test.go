package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

// fetchLab is a data dir with a signing key and an archive holding one
// list, exported to a static tree served by a plain file server: a mirror
// that nobody needs to trust.
type fetchLab struct {
	dataDir, pubPEM, signers, site string
	srv                            *httptest.Server
}

func newFetchLab(t *testing.T, expires time.Time) *fetchLab {
	t.Helper()
	l := &fetchLab{dataDir: t.TempDir(), site: t.TempDir()}
	key, err := listgen.GenerateKey("ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := listgen.MarshalPrivateKey(key)
	pub, _ := listgen.MarshalPublicKey(key.Public())
	line, _ := listgen.AllowedSignersLine(key.Public())
	if err := os.WriteFile(filepath.Join(l.dataDir, "list-signing.key"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	l.pubPEM = filepath.Join(l.dataDir, "public-key.pem")
	l.signers = filepath.Join(l.dataDir, "allowed_signers")
	os.WriteFile(l.pubPEM, pub, 0o644)
	os.WriteFile(l.signers, []byte(line), 0o644)
	list := &listgen.List{
		Version: listgen.FormatVersion, Serial: 7,
		Timestamp: expires.Add(-48 * time.Hour).UTC().Truncate(time.Second), Expires: expires.UTC().Truncate(time.Second),
		Author:        "test",
		PolicyAliases: map[string]listgen.Policy{},
		Policies:      map[string]listgen.Policy{"example.test": {Mode: listgen.ModeEnforce, MXs: []string{"mx1.example.test"}}},
	}
	b, _ := listgen.Marshal(list)
	sig, _ := listgen.SignBlob(key, b)
	a, err := publish.OpenArchive(filepath.Join(l.dataDir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(context.Background(), &publish.Snapshot{Serial: 7, List: b, Sig: sig}); err != nil {
		t.Fatal(err)
	}
	l.srv = httptest.NewServer(http.FileServer(http.Dir(l.site)))
	t.Cleanup(l.srv.Close)
	return l
}

func TestPublishExportThenFetchFromMirror(t *testing.T) {
	l := newFetchLab(t, time.Now().Add(24*time.Hour))
	if out, errOut, code := execCLI(t, "publish", "export", "--data-dir", l.dataDir, l.site); code != 0 {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	for _, f := range []string{"policy-list.json", "policy-list.json.sig", "v/7/policy-list.json", "pubkey.pem", "allowed_signers", "postfix-tls-policy", "exim-tls-policy"} {
		if _, err := os.Stat(filepath.Join(l.site, f)); err != nil {
			t.Errorf("export: %v", err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(l.site, "pubkey.pem")); string(b) != string(mustRead(t, l.pubPEM)) {
		t.Errorf("exported public key differs from the signing key's")
	}

	dir := t.TempDir()
	pf, ex := filepath.Join(dir, "postfix-policy"), filepath.Join(dir, "exim-policy")
	args := []string{"fetch", "--url", l.srv.URL + "/policy-list.json", "--pubkey", l.signers,
		"--state-dir", filepath.Join(dir, "state"), "--postfix-map", pf, "--exim-file", ex,
		"--reload", "echo reloaded >> " + filepath.Join(dir, "reloads")}
	if _, errOut, code := execCLI(t, args...); code != 0 {
		t.Fatalf("fetch: %d %s", code, errOut)
	}
	if b := mustRead(t, pf); !strings.Contains(string(b), "example.test secure match=mx1.example.test") {
		t.Errorf("postfix map:\n%s", b)
	}
	// Unchanged (downloaded again: the static server's Last-Modified is
	// in the second of its Date, too weak to be sent back): no reload.
	if _, errOut, code := execCLI(t, args...); code != 0 {
		t.Fatalf("second fetch: %d %s", code, errOut)
	}
	if n := strings.Count(string(mustRead(t, filepath.Join(dir, "reloads"))), "reloaded"); n != 1 {
		t.Errorf("reloaded %d times, want 1", n)
	}

	// A mirror that serves something else is refused: exit 1, one line.
	tampered := filepath.Join(l.site, "policy-list.json")
	os.WriteFile(tampered, []byte(`{"version":"1"}`), 0o644)
	later := time.Now().Add(time.Hour) // Last-Modified has one-second steps
	os.Chtimes(tampered, later, later)
	before := mustRead(t, pf)
	_, errOut, code := execCLI(t, args...)
	if code != exitFindings || !strings.Contains(errOut, "signature does not verify") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("tampered mirror: %d %q", code, errOut)
	}
	if string(mustRead(t, pf)) != string(before) {
		t.Error("map changed after a refused list")
	}
}

func TestFetchCommandExpired(t *testing.T) {
	l := newFetchLab(t, time.Now().Add(-time.Hour))
	if _, errOut, code := execCLI(t, "publish", "export", "--data-dir", l.dataDir, "--pubkey", l.pubPEM, l.site); code != 0 {
		t.Fatalf("export: %d %s", code, errOut)
	}
	dir := t.TempDir()
	pf := filepath.Join(dir, "postfix-policy")
	_, errOut, code := execCLI(t, "fetch", "--url", l.srv.URL+"/policy-list.json", "--pubkey", l.pubPEM,
		"--state-dir", filepath.Join(dir, "state"), "--postfix-map", pf)
	if code != exitFindings || strings.Count(errOut, "expired") != 1 || strings.Count(errOut, "withdrawn") != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("expired: %d %q", code, errOut)
	}
	if b := mustRead(t, pf); !strings.Contains(string(b), "NOT ENFORCED") {
		t.Errorf("map after expiry:\n%s", b)
	}
}

func TestFetchCommandUsage(t *testing.T) {
	key := writeTemp(t, "key.pem", []byte("not a key"))
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no url", []string{"fetch", "--pubkey", key, "--postfix-map", "x"}, "--url"},
		{"no pubkey", []string{"fetch", "--url", "http://127.0.0.1:1/p.json", "--postfix-map", "x"}, "--pubkey"},
		{"nothing to install", []string{"fetch", "--url", "http://127.0.0.1:1/p.json", "--pubkey", key}, "nothing to install"},
		{"bad key", []string{"fetch", "--url", "http://127.0.0.1:1/p.json", "--pubkey", key, "--postfix-map", "x"}, "--pubkey"},
		{"not a URL", []string{"fetch", "--url", "/tmp/p.json", "--pubkey", key, "--postfix-map", "x"}, "http"},
		{"bad jitter", []string{"fetch", "--jitter", "soon"}, "jitter"},
		{"export without a list", []string{"publish", "export", "--data-dir", t.TempDir(), t.TempDir()}, "no published list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := execCLI(t, tt.args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q, want it to mention %q", code, errOut, tt.want)
			}
		})
	}
}

// The configuration shipped in contrib/ loads, and every key lands.
func TestContribFetchConfig(t *testing.T) {
	cmd := newFetchCmd()
	cmd.Flags().String("config", "", "")
	if err := cmd.ParseFlags([]string{"--config", repoFile(t, "contrib", "fetch.yaml")}); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(cmd, map[string]string{"fetch.url": "url", "fetch.postmap": "postmap"})
	if err != nil {
		t.Fatal(err)
	}
	f := c.Fetch
	if f.URL == "" || f.PubKey == "" || f.StateDir != "/var/lib/starttls-preload" || f.PostfixMap == "" ||
		f.Postmap != "hash" || f.Reload != "postfix reload" || f.Timeout != 2*time.Minute || f.MaxSize != 256<<20 ||
		f.CommandTimeout != 5*time.Minute {
		t.Errorf("contrib/fetch.yaml loaded as %+v", f)
	}
	// The flag overrides the file.
	cmd = newFetchCmd()
	cmd.Flags().String("config", "", "")
	if err := cmd.ParseFlags([]string{"--config", repoFile(t, "contrib", "fetch.yaml"), "--command-timeout", "7s"}); err != nil {
		t.Fatal(err)
	}
	if c, err = loadConfig(cmd, map[string]string{"fetch.command_timeout": "command-timeout"}); err != nil || c.Fetch.CommandTimeout != 7*time.Second {
		t.Errorf("--command-timeout 7s: %v, %v", c.Fetch.CommandTimeout, err)
	}
}

// publish export reads --pubkey as fetch and verify do: bounded, so a
// file that never ends (here a pipe whose writer stays open) is refused
// once it passed the bound, not read whole.
func TestPublishExportBoundsPubKey(t *testing.T) {
	l := newFetchLab(t, time.Now().Add(24*time.Hour))
	fifo := filepath.Join(t.TempDir(), "endless.pem")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes: %v", err)
	}
	hold := make(chan struct{})
	defer close(hold)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		w.Write(make([]byte, maxKeyFileSize+1))
		<-hold // no EOF until the test ends
	}()
	_, errOut, code := execCLI(t, "publish", "export", "--data-dir", l.dataDir, "--pubkey", fifo, l.site)
	if code != exitUsage || !strings.Contains(errOut, "larger than") {
		t.Fatalf("export with an endless --pubkey: exit %d, %q", code, errOut)
	}
}
