package main

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testenv"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

// keygenKeys runs keygen into a fresh directory and returns it and the
// key's public half.
func keygenKeys(t *testing.T, alg string) (string, crypto.PublicKey) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	if _, errOut, code := execCLI(t, "keygen", "--out", dir, "--alg", alg); code != exitOK {
		t.Fatalf("keygen: exit %d: %s", code, errOut)
	}
	k, err := listgen.ParsePrivateKey(mustRead(t, filepath.Join(dir, keygenPrivate)))
	if err != nil {
		t.Fatal(err)
	}
	return dir, k.Public()
}

// fingerprints names keys for comparisons.
func fingerprints(keys []crypto.PublicKey) []string {
	var out []string
	for _, k := range keys {
		out = append(out, listgen.Fingerprint(k))
	}
	return out
}

// TestVerifyCommandKeySets: verify accepts a list signed by the second key
// of a two-key file (PEM blocks or allowed_signers lines) and names that
// key; it refuses one signed by a key not in the file; the real
// ssh-keygen agrees on the allowed_signers file.
func TestVerifyCommandKeySets(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen")
	for _, alg := range []string{listgen.AlgECDSAP256, listgen.AlgEd25519} {
		t.Run(alg, func(t *testing.T) {
			cur, _ := keygenKeys(t, alg)
			next, nextPub := keygenKeys(t, alg)
			stranger, _ := keygenKeys(t, alg)
			both := t.TempDir()
			pemFile := filepath.Join(both, "pubkeys.pem")
			allowed := filepath.Join(both, "allowed_signers")
			os.WriteFile(pemFile, slices.Concat(mustRead(t, filepath.Join(cur, keygenPublic)), []byte("# next key\n"), mustRead(t, filepath.Join(next, keygenPublic))), 0o644)
			os.WriteFile(allowed, slices.Concat([]byte("# current\n"), mustRead(t, filepath.Join(cur, keygenAllowed)), []byte("# next\n"), mustRead(t, filepath.Join(next, keygenAllowed))), 0o644)

			list := writeTemp(t, "policy-list.json", mustRead(t, repoFile(t, "policy-list.json")))
			sign := func(keyDir string) {
				t.Helper()
				if _, errOut, code := execCLI(t, "sign", "--key", filepath.Join(keyDir, keygenPrivate), list); code != exitOK {
					t.Fatalf("sign: exit %d: %s", code, errOut)
				}
			}
			sshKeygenAccepts := func() bool {
				cmd := exec.Command(sshKeygen, "-Y", "verify", "-f", allowed, "-I", "starttls-preload", "-n", "starttls-preload", "-s", list+".sshsig")
				cmd.Stdin = bytes.NewReader(mustRead(t, list))
				out, err := cmd.CombinedOutput()
				t.Logf("ssh-keygen: %s", bytes.TrimSpace(out))
				return err == nil
			}

			sign(next)
			for _, pub := range []string{pemFile, allowed} {
				out, errOut, code := execCLI(t, "verify", "--pubkey", pub, list)
				if code != exitOK || !strings.Contains(out, "2 signature(s) good, key "+listgen.Fingerprint(nextPub)) {
					t.Fatalf("verify --pubkey %s, signed by the second key: exit %d: %s %s", filepath.Base(pub), code, out, errOut)
				}
			}
			if !sshKeygenAccepts() {
				t.Error("ssh-keygen -Y verify refused the SSH signature of the second key")
			}

			sign(stranger)
			for _, pub := range []string{pemFile, allowed} {
				_, errOut, code := execCLI(t, "verify", "--pubkey", pub, list)
				if code != exitFindings || !strings.Contains(errOut, list+".sshsig: listgen: signature does not verify") {
					t.Fatalf("verify --pubkey %s, signed by another key: exit %d: %s", filepath.Base(pub), code, errOut)
				}
			}
			os.Remove(list + ".sshsig")
			if _, errOut, code := execCLI(t, "verify", "--pubkey", pemFile, list); code != exitFindings || !strings.Contains(errOut, list+".sig: listgen: signature does not verify") {
				t.Fatalf("verify, .sig only, by another key: exit %d: %s", code, errOut)
			}
			sign(stranger)
			if sshKeygenAccepts() {
				t.Error("ssh-keygen -Y verify accepted a key not in the file")
			}
		})
	}
}

// rotationLab is a service data directory (signing key, archive) exported
// to a static site, and an MTA host that fetches from it.
type rotationLab struct {
	dataDir, site, hostDir string
	archive                *publish.Archive
	srv                    string
	mtime                  time.Time // of the site's list, one step later at each change
}

func (l *rotationLab) addList(t *testing.T, keyDir string, serial int64) *publish.Snapshot {
	t.Helper()
	k, err := listgen.ParsePrivateKey(mustRead(t, filepath.Join(keyDir, keygenPrivate)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	b, err := listgen.Marshal(&listgen.List{
		Version: listgen.FormatVersion, Serial: serial, Timestamp: now.Add(-time.Hour), Expires: now.Add(24 * time.Hour),
		Author: "test", PolicyAliases: map[string]listgen.Policy{},
		Policies: map[string]listgen.Policy{"example.test": {Mode: listgen.ModeEnforce, MXs: []string{"mx1.example.test"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := listgen.SignBlob(k, b)
	sshsig, _ := listgen.SignSSH(k, b)
	snap := &publish.Snapshot{Serial: serial, List: b, Sig: sig, SSHSig: sshsig}
	if err := l.archive.Add(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return snap
}

// touch gives the site's list a later time: the static server's
// Last-Modified has one-second steps.
func (l *rotationLab) touch(t *testing.T) {
	t.Helper()
	l.mtime = l.mtime.Add(time.Minute)
	if err := os.Chtimes(filepath.Join(l.site, publish.ListFile), l.mtime, l.mtime); err != nil {
		t.Fatal(err)
	}
}

func (l *rotationLab) export(t *testing.T, keyDir, nextPub string) {
	t.Helper()
	t.Setenv("STARTTLS_PRELOAD_LIST_KEY", filepath.Join(keyDir, keygenPrivate))
	t.Setenv("STARTTLS_PRELOAD_LIST_NEXT_PUBKEY", nextPub)
	if out, errOut, code := execCLI(t, "publish", "export", "--data-dir", l.dataDir, l.site); code != exitOK {
		t.Fatalf("export: %d %s %s", code, out, errOut)
	}
	l.touch(t)
}

func (l *rotationLab) fetch(t *testing.T, pinned string) (string, int) {
	t.Helper()
	_, errOut, code := execCLI(t, "fetch", "--url", l.srv+"/policy-list.json", "--pubkey", pinned,
		"--state-dir", filepath.Join(l.hostDir, "state"), "--postfix-map", filepath.Join(l.hostDir, "postfix-policy"))
	return errOut, code
}

func (l *rotationLab) installedSerial(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(l.hostDir, "state", publish.ListFile))
	if err != nil {
		t.Fatal(err)
	}
	list, err := listgen.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return list.Serial
}

// TestKeyRotationProcedure walks the README's procedure with the commands:
// announce the next key (list.next_pubkey), the host pins the published
// key file with both keys, the service switches to the next key, the old
// one is dropped; the host keeps fetching throughout and refuses a list by
// a key it does not pin.
func TestKeyRotationProcedure(t *testing.T) {
	cur, curPub := keygenKeys(t, listgen.AlgECDSAP256)
	next, nextPub := keygenKeys(t, listgen.AlgEd25519)
	stranger, _ := keygenKeys(t, listgen.AlgECDSAP256)
	l := &rotationLab{dataDir: t.TempDir(), site: t.TempDir(), hostDir: t.TempDir(), mtime: time.Now()}
	var err error
	if l.archive, err = publish.OpenArchive(filepath.Join(l.dataDir, "archive")); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(l.site)))
	t.Cleanup(srv.Close)
	l.srv = srv.URL
	published := func() []string {
		t.Helper()
		pemKeys, err := listgen.ParsePublicKeys(mustRead(t, filepath.Join(l.site, "pubkey.pem")))
		if err != nil {
			t.Fatal(err)
		}
		sshKeys, err := listgen.ParsePublicKeys(mustRead(t, filepath.Join(l.site, "allowed_signers")))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fingerprints(pemKeys), fingerprints(sshKeys)) {
			t.Fatalf("pubkey.pem has %v, allowed_signers %v", fingerprints(pemKeys), fingerprints(sshKeys))
		}
		return fingerprints(pemKeys)
	}
	pinned := filepath.Join(t.TempDir(), "allowed_signers")
	pin := func() { os.WriteFile(pinned, mustRead(t, filepath.Join(l.site, "allowed_signers")), 0o644) }

	// 1. The service signs with the current key; hosts pin it.
	l.addList(t, cur, 1)
	l.export(t, cur, "")
	if got := published(); !slices.Equal(got, fingerprints([]crypto.PublicKey{curPub})) {
		t.Fatalf("published keys %v, want the current key", got)
	}
	pin()
	if errOut, code := l.fetch(t, pinned); code != exitOK || l.installedSerial(t) != 1 {
		t.Fatalf("fetch: %d %s", code, errOut)
	}

	// 2. The next key is announced (list.next_pubkey): both published,
	// the current one first; the hosts update their pinned file.
	l.export(t, cur, filepath.Join(next, keygenPublic))
	if got, want := published(), fingerprints([]crypto.PublicKey{curPub, nextPub}); !slices.Equal(got, want) {
		t.Fatalf("published keys %v, want %v", got, want)
	}
	pin()
	l.addList(t, cur, 2)
	l.export(t, cur, filepath.Join(next, keygenPublic))
	if errOut, code := l.fetch(t, pinned); code != exitOK || l.installedSerial(t) != 2 {
		t.Fatalf("fetch with both keys pinned: %d %s", code, errOut)
	}

	// 3. The service switches list.key to the next key (list.next_pubkey
	// may still name it): the hosts accept its lists without a change.
	l.addList(t, next, 3)
	l.export(t, next, filepath.Join(next, keygenPublic))
	if got, want := published(), fingerprints([]crypto.PublicKey{nextPub}); !slices.Equal(got, want) {
		t.Fatalf("published keys after the switch %v, want %v", got, want)
	}
	if errOut, code := l.fetch(t, pinned); code != exitOK || l.installedSerial(t) != 3 {
		t.Fatalf("fetch after the switch: %d %s", code, errOut)
	}

	// A list by a key the host does not pin (on a mirror that was broken
	// into, say) is refused, and the installed files stay.
	bad := l.addList(t, stranger, 4)
	os.WriteFile(filepath.Join(l.site, publish.ListFile), bad.List, 0o644)
	os.WriteFile(filepath.Join(l.site, publish.SigFile), bad.Sig, 0o644)
	l.touch(t)
	before := mustRead(t, filepath.Join(l.hostDir, "postfix-policy"))
	if errOut, code := l.fetch(t, pinned); code != exitFindings || !strings.Contains(errOut, "signature does not verify") {
		t.Fatalf("fetch of a list by another key: %d %s", code, errOut)
	}
	if !bytes.Equal(before, mustRead(t, filepath.Join(l.hostDir, "postfix-policy"))) || l.installedSerial(t) != 3 {
		t.Fatal("the installed files changed after a refused list")
	}

	// 4. The old key is dropped: the hosts pin the new file again.
	l.addList(t, next, 5)
	l.export(t, next, "")
	pin()
	if errOut, code := l.fetch(t, pinned); code != exitOK || l.installedSerial(t) != 5 {
		t.Fatalf("fetch with only the new key: %d %s", code, errOut)
	}
}

// TestListSignerAnnouncesNextKey: serve publishes the signing key, then
// the keys of list.next_pubkey (not the signing key twice); a bad file is
// a configuration error.
func TestListSignerAnnouncesNextKey(t *testing.T) {
	next, nextPub := keygenKeys(t, listgen.AlgEd25519)
	dataDir := t.TempDir()
	c := &Config{DataDir: dataDir}
	k, err := listSigner(c)
	if err != nil {
		t.Fatal(err)
	}
	signer, pemOne := k.Signer, k.PubPEM
	selfPub := writeTemp(t, "self.pem", pemOne)
	tests := []struct {
		name string
		next string
		want []crypto.PublicKey
	}{
		{"no next key", "", []crypto.PublicKey{signer.Public()}},
		{"next key", filepath.Join(next, keygenAllowed), []crypto.PublicKey{signer.Public(), nextPub}},
		{"next file holding the signing key too", writeTemp(t, "both", slices.Concat(pemOne, mustRead(t, filepath.Join(next, keygenPublic)))), []crypto.PublicKey{signer.Public(), nextPub}},
		{"next file naming the signing key itself", selfPub, []crypto.PublicKey{signer.Public()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.List.NextPubKey = tt.next
			k, err := listSigner(c)
			if err != nil {
				t.Fatal(err)
			}
			pubPEM, allowed := k.PubPEM, k.Allowed
			for name, b := range map[string][]byte{"pubkey.pem": pubPEM, "allowed_signers": []byte(allowed)} {
				keys, err := listgen.ParsePublicKeys(b)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := fingerprints(keys), fingerprints(tt.want); !slices.Equal(got, want) {
					t.Errorf("%s: %v, want %v", name, got, want)
				}
			}
		})
	}
	c.List.NextPubKey = writeTemp(t, "garbage", []byte("not a key\n"))
	if _, err := listSigner(c); err == nil {
		t.Fatal("a next key file that does not parse was accepted")
	} else if ee := (*exitError)(nil); !errors.As(err, &ee) || ee.code != exitUsage {
		t.Fatalf("err = %v, want a usage error", err)
	}
}

// TestServeStartSignsWithSwitchedKey: after list.key is switched to the
// next key, serve signs a new list with it as it starts, instead of
// serving the list of the old key until the policies change; restarting
// with the same key publishes nothing new.
func TestServeStartSignsWithSwitchedKey(t *testing.T) {
	dataDir := t.TempDir()
	t.Chdir(t.TempDir())
	start := func(keyPath string) (*serveApp, int64) {
		t.Helper()
		t.Setenv("STARTTLS_PRELOAD_LIST_KEY", keyPath)
		cmd := newServeCmd()
		if err := cmd.ParseFlags([]string{"--data-dir", dataDir}); err != nil {
			t.Fatal(err)
		}
		c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir"})
		if err != nil {
			t.Fatal(err)
		}
		app, err := newServeApp(t.Context(), c, schedulerDeps{})
		if err != nil {
			t.Fatal(err)
		}
		defer app.Close()
		serial, err := app.PublishStart(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return app, serial
	}
	next, nextPub := keygenKeys(t, listgen.AlgEd25519)
	first := filepath.Join(dataDir, "list-signing.key")
	if _, serial := start(first); serial == 0 {
		t.Fatal("no first list")
	}
	if _, serial := start(first); serial != 0 {
		t.Fatalf("restart with the same key published serial %d", serial)
	}
	app, serial := start(filepath.Join(next, keygenPrivate))
	if serial == 0 {
		t.Fatal("no new list after the switch")
	}
	cur, err := app.builder.Archive.Current(t.Context())
	if err != nil || cur.Serial != serial {
		t.Fatalf("current list: %v, %v; want serial %d", cur, err, serial)
	}
	if err := listgen.VerifyBlob(nextPub, cur.List, cur.Sig); err != nil {
		t.Fatalf("the list after the switch is not signed by the new key: %v", err)
	}
}

// TestPubkeysCommand: pubkeys prints the keys a file makes trusted, as
// ssh-keygen -l fingerprints them, and names the line it cannot read.
func TestPubkeysCommand(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen")
	cur, _ := keygenKeys(t, listgen.AlgECDSAP256)
	next, _ := keygenKeys(t, listgen.AlgEd25519)
	other, _ := keygenKeys(t, listgen.AlgEd25519)
	otherLine := strings.Replace(string(mustRead(t, filepath.Join(other, keygenAllowed))), `namespaces="starttls-preload"`, `namespaces="git"`, 1)
	allowed := writeTemp(t, "allowed_signers", slices.Concat(
		mustRead(t, filepath.Join(cur, keygenAllowed)), []byte("# next key\n"),
		mustRead(t, filepath.Join(next, keygenAllowed)), []byte(otherLine)))
	out, errOut, code := execCLI(t, "pubkeys", allowed)
	if code != exitOK {
		t.Fatalf("pubkeys: exit %d: %s", code, errOut)
	}
	// ssh-keygen -l reads the key part of the lines that apply.
	var keyLines []string
	for _, dir := range []string{cur, next} {
		keyLines = append(keyLines, strings.SplitN(string(mustRead(t, filepath.Join(dir, keygenAllowed))), " ", 3)[2])
	}
	cmd := exec.Command(sshKeygen, "-l", "-f", "-")
	cmd.Stdin = strings.NewReader(strings.Join(keyLines, ""))
	sshOut, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -l: %v: %s", err, sshOut)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(sshOut)), "\n") {
		want = append(want, strings.Fields(l)[1])
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		got = append(got, strings.Fields(l)[0])
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pubkeys printed %q, ssh-keygen -l says %q", out, want)
	}
	if !strings.Contains(out, "ecdsa-sha2-nistp256") || !strings.Contains(out, "ssh-ed25519") {
		t.Errorf("pubkeys did not print the key types: %q", out)
	}

	bad := writeTemp(t, "bad", slices.Concat(mustRead(t, filepath.Join(cur, keygenPublic)), []byte("oops\n")))
	if _, errOut, code := execCLI(t, "pubkeys", bad); code != exitFindings || !strings.Contains(errOut, "line 5:") {
		t.Errorf("pubkeys of a bad file: exit %d: %q", code, errOut)
	}
	if _, _, code := execCLI(t, "pubkeys", filepath.Join(t.TempDir(), "missing")); code != exitUsage {
		t.Errorf("pubkeys of a missing file: exit %d, want 2", code)
	}
}
