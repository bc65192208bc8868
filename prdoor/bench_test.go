package prdoor

import (
	"fmt"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// BenchmarkPR100 answers a pull request adding 100 domains on the lab:
// 100 full checks, each of its own MX host (so 100 SMTP sessions with
// STARTTLS and a TLS handshake), 100 TXT proofs, the comment and the
// statuses.
func BenchmarkPR100(b *testing.B) {
	e := newEnv(b, "listed.test")
	l, err := listgen.Parse(listBytes(b, "listed.test"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range 100 {
		d := fmt.Sprintf("d%d.test", i)
		e.dns.Add(fmt.Sprintf("%s. 300 IN MX 10 h%d.mx.good.test.", d, i), fmt.Sprintf("h%d.mx.good.test. 300 IN A 127.0.0.2", i),
			fmt.Sprintf("_starttls-preload.%s. 300 IN TXT %q", d, e.gh.PRURL(7)))
		l.Policies[d] = listgen.Policy{Mode: listgen.ModeEnforce, MXs: []string{"*.mx.good.test"}}
	}
	head, err := listgen.Marshal(l)
	if err != nil {
		b.Fatal(err)
	}
	e.gh.OpenPR(7, "contributor/list", map[string][]byte{"policy-list.json": head})
	b.ResetTimer()
	for b.Loop() {
		o, err := e.door.CheckPR(b.Context(), 7)
		if err != nil {
			b.Fatal(err)
		}
		if !o.Success() || len(o.Report.Domains) != 100 {
			b.Fatalf("report: success %v, %d domains", o.Success(), len(o.Report.Domains))
		}
	}
}

// BenchmarkRefuse10000 answers a pull request adding 10,000 domains: read,
// lint, diff, refusal, comment, status.
func BenchmarkRefuse10000(b *testing.B) {
	e := newEnv(b, "listed.test")
	ds := []string{"listed.test"}
	for i := range 10000 {
		ds = append(ds, fmt.Sprintf("d%d.test", i))
	}
	e.gh.OpenPR(7, "contributor/list", listFile(b, ds...))
	b.ResetTimer()
	for b.Loop() {
		o, err := e.door.CheckPR(b.Context(), 7)
		if err != nil {
			b.Fatal(err)
		}
		if o.Report.Refusal == nil {
			b.Fatal("not refused")
		}
	}
}
