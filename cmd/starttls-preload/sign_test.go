package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/internal/testenv"
)

func TestKeygenSignVerify(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen")
	openssl := testenv.LookPath(t, "openssl")
	for _, alg := range []string{"ecdsa-p256", "ed25519"} {
		t.Run(alg, func(t *testing.T) {
			keys := filepath.Join(t.TempDir(), "keys")
			out, errOut, code := execCLI(t, "keygen", "--out", keys, "--alg", alg)
			if code != exitOK {
				t.Fatalf("keygen: exit %d: %s", code, errOut)
			}
			priv := filepath.Join(keys, keygenPrivate)
			if fi, err := os.Stat(priv); err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("private key mode: %v %v", fi.Mode(), err)
			}
			if strings.Contains(out+errOut, "PRIVATE KEY") {
				t.Fatal("keygen printed the private key")
			}
			if _, _, code := execCLI(t, "keygen", "--out", keys); code != exitFindings {
				t.Errorf("second keygen: exit %d, want 1 (no overwrite)", code)
			}

			list := writeTemp(t, "policy-list.json", mustRead(t, repoFile(t, "policy-list.json")))
			if _, errOut, code := execCLI(t, "sign", "--key", priv, list); code != exitOK {
				t.Fatalf("sign: exit %d: %s", code, errOut)
			}
			pubPEM := filepath.Join(keys, keygenPublic)
			allowed := filepath.Join(keys, keygenAllowed)
			for _, pub := range []string{pubPEM, allowed} {
				if out, errOut, code := execCLI(t, "verify", "--pubkey", pub, list); code != exitOK || !strings.Contains(out, "2 signature(s) good") {
					t.Fatalf("verify --pubkey %s: exit %d: %s %s", pub, code, out, errOut)
				}
			}
			// The tools every MTA host has agree.
			cmd := exec.Command(sshKeygen, "-Y", "verify", "-f", allowed, "-I", "starttls-preload", "-n", "starttls-preload", "-s", list+".sshsig")
			cmd.Stdin = bytes.NewReader(mustRead(t, list))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("ssh-keygen -Y verify: %v: %s", err, out)
			}
			if alg == "ecdsa-p256" {
				der := writeTemp(t, "sig.der", decodeB64(t, mustRead(t, list+".sig")))
				if out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", pubPEM, "-signature", der, list).CombinedOutput(); err != nil {
					t.Errorf("openssl dgst -verify: %v: %s", err, out)
				}
			}

			// A changed byte, a truncated file, a wrong key: exit 1.
			data := mustRead(t, list)
			other := filepath.Join(t.TempDir(), "other")
			if _, _, code := execCLI(t, "keygen", "--out", other, "--alg", alg); code != exitOK {
				t.Fatal("keygen other")
			}
			cases := map[string]struct {
				data []byte
				pub  string
			}{
				"changed byte": {bytes.Replace(data, []byte(`"serial": 1`), []byte(`"serial": 2`), 1), pubPEM},
				"truncated":    {data[:len(data)-1], pubPEM},
				"wrong key":    {data, filepath.Join(other, keygenPublic)},
			}
			for name, c := range cases {
				if err := os.WriteFile(list, c.data, 0o644); err != nil {
					t.Fatal(err)
				}
				if _, errOut, code := execCLI(t, "verify", "--pubkey", c.pub, list); code != exitFindings || !strings.Contains(errOut, "signature does not verify") {
					t.Errorf("%s: exit %d (%s), want 1", name, code, errOut)
				}
			}
			// Only the SSH signature present: still checked.
			os.WriteFile(list, data, 0o644)
			os.Remove(list + ".sig")
			if _, errOut, code := execCLI(t, "verify", "--pubkey", allowed, list); code != exitOK {
				t.Errorf("sshsig only: exit %d: %s", code, errOut)
			}
			os.Remove(list + ".sshsig")
			if _, _, code := execCLI(t, "verify", "--pubkey", allowed, list); code != exitFindings {
				t.Errorf("no signature: exit %d, want 1", code)
			}
		})
	}
}

func TestSignRefusesInvalidList(t *testing.T) {
	keys := filepath.Join(t.TempDir(), "keys")
	if _, _, code := execCLI(t, "keygen", "--out", keys); code != exitOK {
		t.Fatal("keygen")
	}
	priv := filepath.Join(keys, keygenPrivate)
	good := mustRead(t, repoFile(t, "policy-list.json"))
	for name, data := range map[string][]byte{
		"not a list":    []byte("hello\n"),
		"not canonical": good[:len(good)-1],
	} {
		list := writeTemp(t, "l.json", data)
		if _, _, code := execCLI(t, "sign", "--key", priv, list); code != exitFindings {
			t.Errorf("%s: exit %d, want 1", name, code)
		}
		if _, err := os.Stat(list + ".sig"); err == nil {
			t.Errorf("%s: a signature was written", name)
		}
	}
	if _, _, code := execCLI(t, "sign", writeTemp(t, "l.json", good)); code != exitUsage {
		t.Errorf("no --key: exit %d, want 2", code)
	}
}

func decodeB64(t *testing.T, b []byte) []byte {
	t.Helper()
	out, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(b)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}
