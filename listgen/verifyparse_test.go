package listgen

import (
	"errors"
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
			l, err := VerifyParse(pub, tt.data, tt.sig, tt.sshsig)
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
