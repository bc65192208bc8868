package listgen

import (
	"bytes"
	"crypto"
	"testing"
	"time"
)

// Publish gives what Marshal, SignBlob, SignSSH and Render give, and the
// same errors.
func TestPublish(t *testing.T) {
	keys := map[string]crypto.Signer{}
	for _, alg := range []string{AlgECDSAP256, AlgEd25519} {
		k, err := GenerateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		keys[alg] = k
	}
	sample, err := Parse(readFile(t, "testdata/sample.json"))
	if err != nil {
		t.Fatal(err)
	}
	undefined := genList(300)
	undefined.Policies["undefined-alias.example.com"] = Policy{PolicyAlias: "nope"}
	badMode := genList(300)
	badMode.Policies["bad-mode.example.com"] = Policy{Mode: "bogus", MXs: []string{"mx.example.com"}}
	badVersion := genList(3)
	badVersion.Version = "2"
	lists := map[string]*List{
		"sample":          sample,
		"generated":       genList(3000),
		"undefined alias": undefined,
		"invalid policy":  badMode,
		"invalid version": badVersion,
		"nil":             nil,
	}
	opts := map[string]RenderOptions{
		"default":       {},
		"early adopter": {EarlyAdopter: true, CAFile: "/etc/ssl/ca.pem"},
		"expired":       {Now: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for name, l := range lists {
		for oName, o := range opts {
			for alg, key := range keys {
				t.Run(name+"/"+oName+"/"+alg, func(t *testing.T) {
					pub, err := Publish(l, key, o)
					data, wantErr := Marshal(l)
					if wantErr != nil {
						if err == nil || err.Error() != wantErr.Error() {
							t.Fatalf("Publish error %v, Marshal error %v", err, wantErr)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(pub.List, data) {
						t.Error("List differs from Marshal")
					}
					pf, ex := Render(l, o)
					if !bytes.Equal(pub.Postfix, pf) || !bytes.Equal(pub.Exim, ex) {
						t.Error("snippets differ from Render")
					}
					if err := VerifyBlob(key.Public(), data, pub.Sig); err != nil {
						t.Errorf("Sig: %v", err)
					}
					if err := VerifySSH(key.Public(), data, pub.SSHSig); err != nil {
						t.Errorf("SSHSig: %v", err)
					}
					if alg == AlgEd25519 { // deterministic signatures
						sig, _ := SignBlob(key, data)
						sshsig, _ := SignSSH(key, data)
						if !bytes.Equal(pub.Sig, sig) || !bytes.Equal(pub.SSHSig, sshsig) {
							t.Error("signatures differ from SignBlob and SignSSH")
						}
					}
				})
			}
		}
	}
}
