package listgen

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

// testKeys makes n keys, ECDSA P-256 and Ed25519 in turn.
func testKeys(t testing.TB, n int) []crypto.Signer {
	t.Helper()
	var keys []crypto.Signer
	for i := range n {
		alg := AlgECDSAP256
		if i%2 == 1 {
			alg = AlgEd25519
		}
		k, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	return keys
}

// sshPub is "TYPE BASE64" of a key, the end of an allowed_signers line.
func sshPub(t testing.TB, k crypto.Signer) string {
	t.Helper()
	sk, err := ssh.NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk)))
}

func pemPub(t testing.TB, k crypto.Signer) string {
	t.Helper()
	b, err := MarshalPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParsePublicKeys(t *testing.T) {
	k := testKeys(t, MaxKeys+1)
	line := func(i int) string {
		l, err := AllowedSignersLine(k[i].Public())
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSSH, err := ssh.NewPublicKey(rsaKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384DER, err := x509.MarshalPKIXPublicKey(p384.Public())
	if err != nil {
		t.Fatal(err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(k[0])
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for i := range MaxKeys + 1 {
		all.WriteString(line(i))
	}
	ecdsaBody, edBody := sshPub(t, k[0]), sshPub(t, k[1])
	// The Ed25519 key of k[1] as a FIDO security key ("sk-") would carry
	// it: sk signatures are not plain Ed25519 ones, the key must not pass
	// for k[1].
	skEd := "sk-ssh-ed25519@openssh.com " + base64.StdEncoding.EncodeToString(ssh.Marshal(struct {
		Name, Key, App string
	}{"sk-ssh-ed25519@openssh.com", string(k[1].Public().(ed25519.PublicKey)), "ssh:"}))
	ecPub := k[0].Public().(*ecdsa.PublicKey)
	ecPoint, err := ecPub.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	skECDSA := "sk-ecdsa-sha2-nistp256@openssh.com " + base64.StdEncoding.EncodeToString(ssh.Marshal(struct {
		Name, Curve, Point, App string
	}{"sk-ecdsa-sha2-nistp256@openssh.com", "nistp256", string(ecPoint), "ssh:"}))

	tests := []struct {
		name    string
		file    string
		want    []int  // indexes into k, in order
		wantErr string // else: a substring of the error, which wraps ErrBadKey
	}{
		{name: "one PEM block", file: pemPub(t, k[0]), want: []int{0}},
		{name: "two PEM blocks with comments", file: "# current key\n" + pemPub(t, k[0]) + "\n# next key, from 2026-12-01\n" + pemPub(t, k[1]), want: []int{0, 1}},
		{name: "PEM block without final newline", file: strings.TrimSuffix(pemPub(t, k[1]), "\n"), want: []int{1}},
		{name: "one allowed_signers line", file: line(0), want: []int{0}},
		{name: "two allowed_signers lines, comments, blank lines, CRLF", file: "# keys\r\n\r\n" + strings.ReplaceAll(line(1), "\n", "\r\n") + "   \n\t# next\n" + line(0), want: []int{1, 0}},
		{name: "authorized_keys style lines with comments", file: ecdsaBody + " current\n" + edBody + " next key\n", want: []int{0, 1}},
		{name: "allowed_signers without options", file: "starttls-preload " + edBody + "\n", want: []int{1}},
		{name: "PEM and lines mixed", file: pemPub(t, k[2]) + line(3) + "# end\n", want: []int{2, 3}},
		{name: "duplicate key kept once", file: line(0) + pemPub(t, k[0]) + ecdsaBody + "\n" + line(1), want: []int{0, 1}},
		{name: "wrong namespace skipped", file: `starttls-preload namespaces="git,file" ` + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "namespace pattern list matches", file: `starttls-preload namespaces="git,starttls-*" ` + ecdsaBody + "\n", want: []int{0}},
		{name: "negated namespace skipped", file: `starttls-preload namespaces="*,!starttls-preload" ` + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "option keyword case-insensitive", file: `starttls-preload NameSpaces="file" ` + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "other principal skipped", file: "alice@example.org " + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "principal patterns", file: "alice@example.org,starttls-prel??d " + ecdsaBody + "\n* " + edBody + "\n", want: []int{0, 1}},
		{name: "negated principal skipped", file: "*,!starttls-preload " + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "valid-before on a line for another namespace skipped", file: `starttls-preload namespaces="git",valid-before="20270101" ` + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "quoted space in options", file: `starttls-preload namespaces="git file" ` + ecdsaBody + "\n" + line(1), want: []int{1}},
		{name: "MaxKeys keys", file: all.String()[len(line(0)):], want: func() []int {
			var w []int
			for i := 1; i <= MaxKeys; i++ {
				w = append(w, i)
			}
			return w
		}()},

		{name: "empty file", file: "", wantErr: "no key found"},
		{name: "comments only", file: "# nothing\n\n", wantErr: "no key found"},
		{name: "every line for another namespace", file: `starttls-preload namespaces="git" ` + ecdsaBody + "\nbob " + edBody + "\n", wantErr: `no key for principal and namespace "starttls-preload" (2 line(s) skipped)`},
		{name: "too many keys", file: all.String(), wantErr: fmt.Sprintf("line %d: more than %d keys", MaxKeys+1, MaxKeys)},
		{name: "garbage line names its number", file: line(0) + "# fine\nthis is not a key\n" + line(1), wantErr: "line 3: "},
		{name: "garbage after a PEM block names its line", file: pemPub(t, k[0]) + "\ngarbage\n", wantErr: "line 6: "},
		{name: "truncated base64", file: "starttls-preload " + edBody[:len(edBody)-8] + "\n", wantErr: "line 1: allowed_signers line"},
		{name: "truncated key with a comment", file: "starttls-preload " + edBody[:len(edBody)-8] + " next key\n", wantErr: `line 1: allowed_signers line: key of type "ssh-ed25519"`},
		{name: "truncated authorized_keys style line", file: edBody[:len(edBody)-8] + "\n", wantErr: `line 1: key of type "ssh-ed25519"`},
		{name: "authorized_keys style line without key", file: "ecdsa-sha2-nistp256\n", wantErr: "line 1: key type without a base64 key"},
		{name: "key type does not match the key", file: "ssh-ed25519 " + strings.Fields(ecdsaBody)[1] + "\n", wantErr: "line 1: "},
		{name: "valid-after refused", file: line(1) + `starttls-preload valid-after="20260101" ` + ecdsaBody + "\n", wantErr: "line 2: allowed_signers option valid-after is not supported"},
		{name: "valid-before refused", file: `starttls-preload namespaces="starttls-preload",valid-before="20270101" ` + ecdsaBody + "\n", wantErr: "line 1: allowed_signers option valid-before is not supported"},
		{name: "cert-authority refused", file: `* cert-authority ` + ecdsaBody + "\n", wantErr: "line 1: allowed_signers option cert-authority is not supported"},
		{name: "unknown option", file: `starttls-preload no-touch-required ` + ecdsaBody + "\n", wantErr: "line 1: unknown allowed_signers option"},
		{name: "namespaces without quotes", file: `starttls-preload namespaces=starttls-preload ` + ecdsaBody + "\n", wantErr: "line 1: allowed_signers option"},
		{name: "unterminated quote", file: `starttls-preload namespaces="x ` + ecdsaBody + "\n", wantErr: "line 1: unterminated quote"},
		{name: "sk-ssh-ed25519 allowed_signers line refused", file: line(0) + "starttls-preload " + skEd + "\n", wantErr: "line 2: SSH security key sk-ssh-ed25519@openssh.com"},
		{name: "sk-ssh-ed25519 authorized_keys style line refused", file: skEd + " yubikey\n", wantErr: "line 1: SSH security key sk-ssh-ed25519@openssh.com"},
		{name: "sk-ecdsa allowed_signers line refused", file: `starttls-preload namespaces="starttls-preload" ` + skECDSA + "\n", wantErr: "line 1: SSH security key sk-ecdsa-sha2-nistp256@openssh.com"},
		{name: "sk key line for another principal skipped", file: "alice@example.org " + skEd + "\n" + `git namespaces="git" ` + skECDSA + "\n" + line(0), want: []int{0}},
		{name: "RSA key line", file: "starttls-preload " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(rsaSSH))) + "\n", wantErr: "listgen: unsupported or malformed key: line 1: *rsa.PublicKey"},
		{name: "P-384 PEM", file: line(0) + string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: p384DER})), wantErr: "listgen: unsupported or malformed key: line 2: ECDSA curve P-384"},
		{name: "private key PEM", file: "# oops\n" + string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})), wantErr: `line 2: PEM block "PRIVATE KEY"`},
		{name: "PEM without END", file: strings.Split(pemPub(t, k[0]), "-----END")[0], wantErr: "line 1: PEM block without an END line"},
		{name: "broken PEM before a good one", file: "-----BEGIN PUBLIC KEY-----\n!!!\n-----END PUBLIC KEY-----\n" + pemPub(t, k[0]), wantErr: "line 1: malformed PEM block"},
		{name: "file too large", file: strings.Repeat("#", MaxKeyFile+1), wantErr: "key file larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePublicKeys([]byte(tt.file))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParsePublicKeys = %d keys, %v; want an ErrBadKey containing %q", len(got), err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublicKeys: %v", err)
			}
			var gotFP, wantFP []string
			for _, g := range got {
				gotFP = append(gotFP, Fingerprint(g))
			}
			for _, i := range tt.want {
				wantFP = append(wantFP, Fingerprint(k[i].Public()))
			}
			if !slices.Equal(gotFP, wantFP) {
				t.Fatalf("ParsePublicKeys = %v, want %v", gotFP, wantFP)
			}
		})
	}
}

func TestMatchPatternList(t *testing.T) {
	tests := []struct {
		list string
		want bool
	}{
		{"starttls-preload", true},
		{"Starttls-preload", false}, // principals are case-sensitive
		{"*", true},
		{"starttls-*", true},
		{"*-preload", true},
		{"s*t*l*d", true},
		{"starttls-preloa?", true},
		{"starttls-preload?", false},
		{"starttls", false},
		{"", false},
		{"git,starttls-preload", true},
		{"git,file", false},
		{"*,!starttls-preload", false},
		{"!starttls-preload,*", false},
		{"!git,starttls-preload", true},
		{"!git", false},
	}
	for _, tt := range tests {
		if got := matchPatternList(SSHNamespace, tt.list); got != tt.want {
			t.Errorf("matchPatternList(%q, %q) = %v, want %v", SSHNamespace, tt.list, got, tt.want)
		}
	}
}
