package listgen

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/starttls-preload/starttls-preload/internal/testenv"
)

// signed is a key, its files as keygen writes them, and data signed with it.
type signed struct {
	key                        crypto.Signer
	dir, pubPEM, allowed, file string
	data, sig, sshsig          []byte
}

func newSigned(t *testing.T, alg string, data []byte) *signed {
	t.Helper()
	key, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s := &signed{key: key, dir: t.TempDir(), data: data}
	pub, err := MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	line, err := AllowedSignersLine(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if s.sig, err = SignBlob(key, data); err != nil {
		t.Fatal(err)
	}
	if s.sshsig, err = SignSSH(key, data); err != nil {
		t.Fatal(err)
	}
	s.pubPEM = s.write(t, "pub.pem", pub)
	s.allowed = s.write(t, "allowed_signers", []byte(line))
	s.file = s.write(t, "policy-list.json", data)
	s.write(t, "policy-list.json.sig", s.sig)
	s.write(t, "policy-list.json.sshsig", s.sshsig)
	return s
}

func (s *signed) write(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// sshKeygenVerify runs `ssh-keygen -Y verify` on data with an armoured
// signature and reports whether it accepted it.
func sshKeygenVerify(t *testing.T, allowed string, data, sshsig []byte) bool {
	t.Helper()
	bin := testenv.LookPath(t, "ssh-keygen")
	dir := t.TempDir()
	sigFile := filepath.Join(dir, "f.sshsig")
	if err := os.WriteFile(sigFile, sshsig, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-Y", "verify", "-f", allowed, "-I", SSHNamespace, "-n", SSHNamespace, "-s", sigFile)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.CombinedOutput()
	t.Logf("ssh-keygen: %s", bytes.TrimSpace(out))
	return err == nil
}

// opensslVerify runs `openssl dgst -sha256 -verify` on data with a FILE.sig.
func opensslVerify(t *testing.T, pubPEM string, data, sig []byte) bool {
	t.Helper()
	bin := testenv.LookPath(t, "openssl")
	dir := t.TempDir()
	der, err := base64.StdEncoding.DecodeString(string(sig))
	if err != nil {
		der = []byte("not base64")
	}
	sigFile := filepath.Join(dir, "f.sig.der")
	dataFile := filepath.Join(dir, "f")
	if err := os.WriteFile(sigFile, der, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dataFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "dgst", "-sha256", "-verify", pubPEM, "-signature", sigFile, dataFile).CombinedOutput()
	t.Logf("openssl: %s", bytes.TrimSpace(out))
	return err == nil
}

func TestSignVerify(t *testing.T) {
	data := []byte("{\n  \"author\": \"x\"\n}\n")
	for _, alg := range []string{AlgECDSAP256, AlgEd25519} {
		t.Run(alg, func(t *testing.T) {
			s := newSigned(t, alg, data)
			other := newSigned(t, alg, data)
			changed := bytes.Clone(data)
			changed[3] ^= 1
			truncated := data[:len(data)-1]
			cases := []struct {
				name   string
				data   []byte
				s      *signed // whose key verifies
				wantOK bool
			}{
				{"good", data, s, true},
				{"changed byte", changed, s, false},
				{"truncated file", truncated, s, false},
				{"wrong key", data, other, false},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					pub, err := os.ReadFile(c.s.pubPEM)
					if err != nil {
						t.Fatal(err)
					}
					keys, err := ParsePublicKeys(pub)
					if err != nil || len(keys) != 1 {
						t.Fatalf("ParsePublicKeys = %d keys, %v; want 1", len(keys), err)
					}
					k := keys[0]
					err = VerifyBlob(k, c.data, s.sig)
					if (err == nil) != c.wantOK || err != nil && !errors.Is(err, ErrBadSignature) {
						t.Errorf("VerifyBlob = %v, want ok %v", err, c.wantOK)
					}
					err = VerifySSH(k, c.data, s.sshsig)
					if (err == nil) != c.wantOK || err != nil && !errors.Is(err, ErrBadSignature) {
						t.Errorf("VerifySSH = %v, want ok %v", err, c.wantOK)
					}
					if got := sshKeygenVerify(t, c.s.allowed, c.data, s.sshsig); got != c.wantOK {
						t.Errorf("ssh-keygen -Y verify accepted = %v, want %v", got, c.wantOK)
					}
					if alg == AlgECDSAP256 {
						if got := opensslVerify(t, c.s.pubPEM, c.data, s.sig); got != c.wantOK {
							t.Errorf("openssl dgst -verify accepted = %v, want %v", got, c.wantOK)
						}
					}
				})
			}
		})
	}
}

// Signatures made by ssh-keygen itself (which hashes with sha512 by
// default; ours use sha256) verify with VerifySSH and VerifyParse, and a
// changed byte is refused.
func TestVerifySSHOfSSHKeygenSignature(t *testing.T) {
	sshKeygen := testenv.LookPath(t, "ssh-keygen")
	for _, typ := range []string{"ecdsa", "ed25519"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			keyPath := filepath.Join(dir, "id")
			if out, err := exec.Command(sshKeygen, "-q", "-t", typ, "-N", "", "-f", keyPath).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v\n%s", err, out)
			}
			data, err := Marshal(genList(20))
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "policy-list.json")
			if err := os.WriteFile(file, data, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sshKeygen, "-Y", "sign", "-f", keyPath, "-n", SSHNamespace, file).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
			}
			sshsig, err := os.ReadFile(file + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			pubLine, err := os.ReadFile(keyPath + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			keys, err := ParsePublicKeys([]byte("starttls-preload " + string(pubLine)))
			if err != nil {
				t.Fatal(err)
			}
			pub := keys[0]
			if err := VerifySSH(pub, data, sshsig); err != nil {
				t.Fatalf("VerifySSH of ssh-keygen's signature: %v", err)
			}
			if _, _, err := VerifyParse(keys, data, nil, sshsig); err != nil {
				t.Fatalf("VerifyParse of ssh-keygen's signature: %v", err)
			}
			changed := bytes.Clone(data)
			changed[len(changed)/2] ^= 0x01
			if err := VerifySSH(pub, changed, sshsig); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("changed list: err = %v, want ErrBadSignature", err)
			}
		})
	}
}

// TestSSHKeygenAgreesOnKeyFiles: for allowed_signers files of several
// lines, the real `ssh-keygen -Y verify -I starttls-preload -n
// starttls-preload` and ParsePublicKeys + Verify accept the same SSH
// signatures: a list signed by the second key of a two-key file, not one
// by a key outside the file, nor one by a key whose line is for another
// namespace or principal.
func TestSSHKeygenAgreesOnKeyFiles(t *testing.T) {
	testenv.LookPath(t, "ssh-keygen")
	k := testKeys(t, 3)
	data, err := Marshal(genList(20))
	if err != nil {
		t.Fatal(err)
	}
	line := func(i int) string {
		l, err := AllowedSignersLine(k[i].Public())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	tests := []struct {
		name   string
		file   string
		signer int
		want   bool
	}{
		{"second of two keys", line(0) + line(1), 1, true},
		{"first of two keys", line(0) + line(1), 0, true},
		{"key not in the file", line(0) + line(1), 2, false},
		{"second of two, comments between", "# current\n" + line(2) + "\n# next\n" + line(1), 1, true},
		{"line for another namespace", `starttls-preload namespaces="git" ` + sshPub(t, k[0]) + "\n" + line(1), 0, false},
		{"the other line of that file", `starttls-preload namespaces="git" ` + sshPub(t, k[0]) + "\n" + line(1), 1, true},
		{"namespace pattern", line(0) + `starttls-preload namespaces="file,starttls-*" ` + sshPub(t, k[1]) + "\n", 1, true},
		{"line for another principal", "alice@example.org " + sshPub(t, k[0]) + "\n" + line(1), 0, false},
		{"principal pattern", line(1) + "*@example.org,starttls-* " + sshPub(t, k[0]) + "\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			allowed := filepath.Join(t.TempDir(), "allowed_signers")
			if err := os.WriteFile(allowed, []byte(tt.file), 0o644); err != nil {
				t.Fatal(err)
			}
			sshsig, err := SignSSH(k[tt.signer], data)
			if err != nil {
				t.Fatal(err)
			}
			if got := sshKeygenVerify(t, allowed, data, sshsig); got != tt.want {
				t.Errorf("ssh-keygen -Y verify accepted = %v, want %v", got, tt.want)
			}
			keys, err := ParsePublicKeys([]byte(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			key, err := Verify(keys, data, nil, sshsig)
			if (err == nil) != tt.want {
				t.Fatalf("Verify = %v; want accepted %v", err, tt.want)
			}
			if err == nil && Fingerprint(key) != Fingerprint(k[tt.signer].Public()) {
				t.Fatalf("Verify returned %s, want the signer %s", Fingerprint(key), Fingerprint(k[tt.signer].Public()))
			}
		})
	}
}

// TestVerifySSHTamperedEnvelope changes one field of a good SSHSIG at a
// time: VerifySSH must agree with ssh-keygen -Y verify on each, and refuse
// every change that ssh-keygen refuses.
func TestVerifySSHTamperedEnvelope(t *testing.T) {
	data := []byte("{\n  \"serial\": 1\n}\n")
	for _, alg := range []string{AlgECDSAP256, AlgEd25519} {
		t.Run(alg, func(t *testing.T) {
			s := newSigned(t, alg, data)
			other := newSigned(t, alg, data)
			raw, err := dearmor(s.sshsig)
			if err != nil {
				t.Fatal(err)
			}
			var good sshsigBlob
			if err := ssh.Unmarshal(raw, &good); err != nil {
				t.Fatal(err)
			}
			var goodSig ssh.Signature
			if err := ssh.Unmarshal([]byte(good.Signature), &goodSig); err != nil {
				t.Fatal(err)
			}
			otherRaw, err := dearmor(other.sshsig)
			if err != nil {
				t.Fatal(err)
			}
			var otherBlob sshsigBlob
			if err := ssh.Unmarshal(otherRaw, &otherBlob); err != nil {
				t.Fatal(err)
			}
			tests := []struct {
				name   string
				change func(b *sshsigBlob, sig *ssh.Signature) []byte // nil: marshal b with sig
				wantOK bool
			}{
				{name: "unchanged", wantOK: true},
				{name: "reserved field set (ignored by the protocol)", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.Reserved = "x"; return nil }, wantOK: true},
				{name: "namespace file", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.Namespace = "file"; return nil }},
				{name: "hash sha512 in the envelope", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.HashAlg = "sha512"; return nil }},
				{name: "hash sha1", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.HashAlg = "sha1"; return nil }},
				{name: "hash SHA256 upper case", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.HashAlg = "SHA256"; return nil }},
				{name: "version 2", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.Version = 2; return nil }},
				{name: "another key named", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.PublicKey = otherBlob.PublicKey; return nil }},
				{name: "another key's signature", change: func(b *sshsigBlob, _ *ssh.Signature) []byte { b.Signature = otherBlob.Signature; return ssh.Marshal(b) }},
				{name: "signature format of another key type", change: func(_ *sshsigBlob, sig *ssh.Signature) []byte {
					if sig.Format == ssh.KeyAlgoED25519 {
						sig.Format = ssh.KeyAlgoECDSA256
					} else {
						sig.Format = ssh.KeyAlgoED25519
					}
					return nil
				}},
				{name: "bytes after the signature blob", change: func(_ *sshsigBlob, sig *ssh.Signature) []byte { sig.Rest = []byte{0, 0, 0, 0}; return nil }},
				{name: "bytes inside the signature blob", change: func(_ *sshsigBlob, sig *ssh.Signature) []byte { sig.Blob = append(sig.Blob, 0); return nil }},
				{name: "bytes after the envelope", change: func(b *sshsigBlob, sig *ssh.Signature) []byte {
					b.Signature = string(ssh.Marshal(sig))
					return append(ssh.Marshal(b), 0, 0, 0, 0)
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					b, sig := good, goodSig
					sig.Blob = bytes.Clone(sig.Blob)
					var out []byte
					if tt.change != nil {
						out = tt.change(&b, &sig)
					}
					if out == nil {
						b.Signature = string(ssh.Marshal(&sig))
						out = ssh.Marshal(&b)
					}
					armored := armor(out)
					err := VerifySSH(s.key.Public(), data, armored)
					if (err == nil) != tt.wantOK || err != nil && !errors.Is(err, ErrBadSignature) {
						t.Errorf("VerifySSH = %v, want ok %v", err, tt.wantOK)
					}
					if got := sshKeygenVerify(t, s.allowed, data, armored); got != tt.wantOK {
						t.Errorf("ssh-keygen -Y verify accepted = %v, want %v", got, tt.wantOK)
					}
				})
			}
		})
	}
}
