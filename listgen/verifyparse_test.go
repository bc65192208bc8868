package listgen

import (
	"crypto"
	"errors"
	"slices"
	"testing"
)

func TestVerifyParse(t *testing.T) {
	key, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	data, err := Marshal(genList(50))
	if err != nil {
		t.Fatal(err)
	}
	sign := func(d []byte) (sig, sshsig []byte) {
		t.Helper()
		sig, err := SignBlob(key, d)
		if err != nil {
			t.Fatal(err)
		}
		sshsig, err = SignSSH(key, d)
		if err != nil {
			t.Fatal(err)
		}
		return sig, sshsig
	}
	sig, sshsig := sign(data)
	notAList := []byte("<html>oops</html>\n")
	badSig, badSSH := sign(notAList)
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/3] ^= 0x20

	tests := []struct {
		name        string
		data        []byte
		sig, sshsig []byte
		wrongKey    bool
		want        error // nil: parses
	}{
		{name: "both signatures", data: data, sig: sig, sshsig: sshsig},
		{name: "sig only", data: data, sig: sig},
		{name: "sshsig only", data: data, sshsig: sshsig},
		{name: "no signature", data: data, want: ErrBadSignature},
		{name: "flipped byte", data: flipped, sig: sig, sshsig: sshsig, want: ErrBadSignature},
		{name: "one of two bad", data: data, sig: sig, sshsig: badSSH, want: ErrBadSignature},
		{name: "wrong key", data: data, sig: sig, wrongKey: true, want: ErrBadSignature},
		{name: "signed, but not a list", data: notAList, sig: badSig, sshsig: badSSH, want: ErrInvalid},
		{name: "not a list, not signed: the signature is reported", data: notAList, sig: sig, want: ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := key.Public()
			if tt.wrongKey {
				pub = other.Public()
			}
			l, _, err := VerifyParse([]crypto.PublicKey{pub}, tt.data, tt.sig, tt.sshsig)
			if tt.want == nil {
				if err != nil || l == nil || len(l.Policies) == 0 {
					t.Fatalf("VerifyParse = %v, %v; want the list", l, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || l != nil {
				t.Fatalf("VerifyParse = %v, %v; want %v and no list", l, err, tt.want)
			}
		})
	}
}

// TestVerifyKeySet: a list verifies under a set of trusted keys when every
// signature given verifies, all under one key of the set; the key is
// returned.
func TestVerifyKeySet(t *testing.T) {
	k := testKeys(t, 5) // 0 ECDSA, 1 Ed25519, 2 ECDSA, 3 Ed25519, 4 ECDSA
	data, err := Marshal(genList(20))
	if err != nil {
		t.Fatal(err)
	}
	type sigs struct{ sig, sshsig []byte }
	by := make([]sigs, len(k))
	for i, key := range k {
		if by[i].sig, err = SignBlob(key, data); err != nil {
			t.Fatal(err)
		}
		if by[i].sshsig, err = SignSSH(key, data); err != nil {
			t.Fatal(err)
		}
	}
	set := func(idx ...int) []crypto.PublicKey {
		var s []crypto.PublicKey
		for _, i := range idx {
			s = append(s, k[i].Public())
		}
		return s
	}
	tests := []struct {
		name        string
		keys        []crypto.PublicKey
		sig, sshsig []byte
		want        int    // index into k of the key returned
		wantSig     string // else: which signature fails ("sig", "sshsig")
	}{
		{name: "both by the second of two", keys: set(0, 2), sig: by[2].sig, sshsig: by[2].sshsig, want: 2},
		{name: "both by the first of two", keys: set(0, 2), sig: by[0].sig, sshsig: by[0].sshsig, want: 0},
		{name: "sig only by the second ECDSA key", keys: set(0, 2), sig: by[2].sig, want: 2},
		{name: "sig only by the second Ed25519 key", keys: set(1, 3), sig: by[3].sig, want: 3},
		{name: "sig only, Ed25519 after ECDSA", keys: set(0, 1), sig: by[1].sig, want: 1},
		{name: "sig only, ECDSA after Ed25519", keys: set(1, 0), sig: by[0].sig, want: 0},
		{name: "sshsig only by the second key", keys: set(1, 2), sshsig: by[2].sshsig, want: 2},
		{name: "last of five keys", keys: set(0, 1, 2, 3, 4), sig: by[4].sig, sshsig: by[4].sshsig, want: 4},

		{name: "sig by a key not in the set", keys: set(0, 2), sig: by[4].sig, wantSig: "sig"},
		{name: "sshsig by a key not in the set", keys: set(0, 2), sshsig: by[4].sshsig, wantSig: "sshsig"},
		{name: "Ed25519 sig, ECDSA keys only", keys: set(0, 2), sig: by[1].sig, wantSig: "sig"},
		{name: "both by a key not in the set", keys: set(0, 1), sig: by[2].sig, sshsig: by[2].sshsig, wantSig: "sshsig"},
		{name: "sig and sshsig by two different trusted keys", keys: set(0, 2), sig: by[0].sig, sshsig: by[2].sshsig, wantSig: "sig"},
		{name: "good sshsig, sig by an untrusted key", keys: set(0, 2), sig: by[4].sig, sshsig: by[2].sshsig, wantSig: "sig"},
		{name: "good sig, sshsig by an untrusted key", keys: set(0, 2), sig: by[2].sig, sshsig: by[4].sshsig, wantSig: "sshsig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, f := range []struct {
				name string
				run  func() (crypto.PublicKey, error)
			}{
				{"Verify", func() (crypto.PublicKey, error) { return Verify(tt.keys, data, tt.sig, tt.sshsig) }},
				{"VerifyParse", func() (crypto.PublicKey, error) {
					l, key, err := VerifyParse(tt.keys, data, tt.sig, tt.sshsig)
					if (l == nil) != (err != nil) {
						t.Errorf("VerifyParse: list %v with error %v", l != nil, err)
					}
					return key, err
				}},
			} {
				key, err := f.run()
				if tt.wantSig != "" {
					var se *SignatureError
					if !errors.As(err, &se) || se.Sig != tt.wantSig || !errors.Is(err, ErrBadSignature) || key != nil {
						t.Errorf("%s = %v, %v; want a bad %s", f.name, key, err, tt.wantSig)
					}
					continue
				}
				if err != nil || key == nil || Fingerprint(key) != Fingerprint(k[tt.want].Public()) {
					t.Errorf("%s = %v, %v; want key %d", f.name, key, err, tt.want)
				}
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		if _, err := Verify(nil, data, by[0].sig, nil); !errors.Is(err, ErrBadKey) {
			t.Fatalf("Verify with no key = %v, want ErrBadKey", err)
		}
	})
	t.Run("too many keys", func(t *testing.T) {
		many := slices.Repeat(set(0), MaxKeys+1)
		if _, err := Verify(many, data, by[0].sig, nil); !errors.Is(err, ErrBadKey) {
			t.Fatalf("Verify with %d keys = %v, want ErrBadKey", len(many), err)
		}
	})
}
