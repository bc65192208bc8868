package listgen

import (
	"bytes"
	"crypto"
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParse: Parse never panics, accepts only JSON, and what it accepts
// has a canonical form that parses back to the same bytes; Lint and the
// renderers never panic on it.
func FuzzParse(f *testing.F) {
	f.Add(readFile(f, "testdata/sample.json"))
	f.Add([]byte(`{"version":"1","serial":0,"timestamp":"2026-01-01T00:00:00Z","expires":"2026-01-02T00:00:00Z","author":"\u00e9","policy-aliases":{},"policies":{}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("Parse accepted invalid JSON %q", b)
		}
		m, err := Marshal(l)
		if err != nil {
			t.Fatalf("Marshal of a parsed list: %v", err)
		}
		l2, err := Parse(m)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, m)
		}
		m2, err := Marshal(l2)
		if err != nil || !bytes.Equal(m, m2) {
			t.Fatalf("canonical form is not stable: %v", err)
		}
		Lint(l)
		RenderPostfix(l, RenderOptions{EarlyAdopter: true})
		RenderExim(l, RenderOptions{})
	})
}

// FuzzImportEFF: the EFF importer never panics, and what it returns
// marshals.
func FuzzImportEFF(f *testing.F) {
	f.Add([]byte(`{"timestamp": 1589995512, "expires": "2020-06-03T10:25:12.710055-07:00", "version": "0.1", "author": "x",
		"policy-aliases": {"a": {"mode": "testing", "mxs": [".a.example.com"]}},
		"policies": {"Example.com": {"policy-alias": "a"}, "b.example.com": {"mode": "enforce", "mxs": ["mx.b.example.com"]}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := ImportEFF(b, 1)
		if err != nil {
			return
		}
		if _, err := Marshal(l); err != nil {
			t.Fatalf("Marshal of an imported list: %v", err)
		}
	})
}

// FuzzVerifySSH: the SSHSIG reader never panics and never accepts a
// signature over other data.
func FuzzVerifySSH(f *testing.F) {
	key, err := GenerateKey(AlgEd25519)
	if err != nil {
		f.Fatal(err)
	}
	good, err := SignSSH(key, []byte("data"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(armorBegin + "\n" + armorEnd + "\n"))
	other, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	keys := []crypto.PublicKey{other.Public(), key.Public()}
	f.Fuzz(func(t *testing.T, sig []byte) {
		if VerifySSH(key.Public(), []byte("other data"), sig) == nil {
			t.Fatal("accepted a signature over other data")
		}
		if _, err := Verify(keys, []byte("other data"), sig, sig); err == nil {
			t.Fatal("Verify accepted signatures over other data")
		}
		VerifyBlob(key.Public(), []byte("data"), sig)
		Verify(keys, []byte("data"), sig, nil)
	})
}

// FuzzParsePublicKeys: key files never make the reader panic, and what it
// returns is a bounded set of distinct supported keys.
func FuzzParsePublicKeys(f *testing.F) {
	key, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	next, err := GenerateKey(AlgEd25519)
	if err != nil {
		f.Fatal(err)
	}
	pem, _ := MarshalPublicKey(key.Public())
	pem2, _ := MarshalPublicKey(next.Public())
	line, _ := AllowedSignersLine(key.Public())
	line2, _ := AllowedSignersLine(next.Public())
	f.Add(pem)
	f.Add([]byte("# comment\n\n" + line))
	f.Add(append(append([]byte("# current\n"), pem...), append([]byte("\n# next\n"), pem2...)...))
	f.Add([]byte(line + "# next key\n" + line2))
	f.Add([]byte(`git@example.org namespaces="git" ` + line2[len(SSHNamespace)+len(` namespaces="starttls-preload" `):] + "\n" + line))
	f.Add([]byte(`*,!nobody valid-before="20270101" ` + line2[len(SSHNamespace)+len(` namespaces="starttls-preload" `):]))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := ParsePublicKeys(b)
		if err == nil {
			if len(keys) == 0 || len(keys) > MaxKeys {
				t.Fatalf("returned %d keys", len(keys))
			}
			seen := map[string]bool{}
			for _, pub := range keys {
				if err := checkPublic(pub); err != nil {
					t.Fatalf("returned an unsupported key: %v", err)
				}
				if fp := Fingerprint(pub); seen[fp] {
					t.Fatalf("returned %s twice", fp)
				} else {
					seen[fp] = true
				}
			}
		} else if !errors.Is(err, ErrBadKey) {
			t.Fatalf("error %v does not wrap ErrBadKey", err)
		}
		ParsePrivateKey(b)
	})
}
