package dane

import (
	"crypto/x509"
	"testing"
	"time"
)

// BenchmarkVerifyHost measures one chain (leaf + intermediate sent, root
// omitted) against one TLSA set, as the validator does per server.
func BenchmarkVerifyHost(b *testing.B) {
	valid := [2]time.Time{now.Add(-time.Hour), now.Add(time.Hour)}
	root := issue(b, nil, "Root", true, valid[0], valid[1])
	inter := issue(b, root, "Intermediate", true, valid[0], valid[1])
	leaf := issue(b, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	other := issue(b, inter, "mx.example.test", false, valid[0], valid[1], "mx.example.test")
	chain := []*x509.Certificate{leaf.cert, inter.cert}
	for _, bb := range []struct {
		name    string
		records []TLSA
	}{
		{"EE_3_1_1", []TLSA{rec(3, 1, 1, leaf.cert)}},
		{"EE_3_1_1+3_1_2", []TLSA{rec(3, 1, 1, other.cert), rec(3, 1, 2, leaf.cert)}},
		{"TA_2_0_1_sent", []TLSA{rec(2, 0, 1, inter.cert)}},
		{"TA_2_0_0_omitted", []TLSA{rec(2, 0, 0, root.cert)}},
		{"TA_2_1_0_omitted", []TLSA{rec(2, 1, 0, root.cert)}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if err := VerifyHost(bb.records, chain, now, "mx.example.test"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
