package listgen

import (
	"bytes"
	"encoding/json"
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
	f.Fuzz(func(t *testing.T, sig []byte) {
		if VerifySSH(key.Public(), []byte("other data"), sig) == nil {
			t.Fatal("accepted a signature over other data")
		}
		VerifyBlob(key.Public(), []byte("data"), sig)
	})
}

// FuzzParsePublicKey: key files never make the reader panic.
func FuzzParsePublicKey(f *testing.F) {
	key, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	pem, _ := MarshalPublicKey(key.Public())
	line, _ := AllowedSignersLine(key.Public())
	f.Add(pem)
	f.Add([]byte("# comment\n\n" + line))
	f.Fuzz(func(t *testing.T, b []byte) {
		if pub, err := ParsePublicKey(b); err == nil {
			if err := checkPublic(pub); err != nil {
				t.Fatalf("returned an unsupported key: %v", err)
			}
		}
		ParsePrivateKey(b)
	})
}
