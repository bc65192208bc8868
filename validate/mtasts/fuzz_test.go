package mtasts

import (
	"reflect"
	"testing"

	"github.com/starttls-preload/starttls-preload/validate/internal/txtrecord"
)

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=STSv1; id=20160831085700Z;",
		"v=STSv1;id=abc",
		"v=STSv1 ;\tid=abc ; ",
		"v=STSv1; id=abc; ext=1",
		"v=STSv1; id=a; id=b",
		"v=STSv1; id=a; v=STSv2; id=!",
		"v=STSv1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		if r.ID == "" || len(r.ID) > 32 || !isAlnum(r.ID) {
			t.Fatalf("ParseRecord(%q) accepted id %q", s, r.ID)
		}
		for _, e := range r.Extensions {
			if !txtrecord.ValidExtName(e.Key) || !txtrecord.ValidExtValue(e.Value) {
				t.Fatalf("ParseRecord(%q) accepted extension %q", s, e)
			}
		}
	})
}

func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
		"version: STSv1\nmode: none\nmax_age: 0",
		"version: STSv1\nmode: testing\nmx: a.b\nmax_age: 31557600\nfoo: bar baz\n",
		"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n",
		"version: STSv1\nmode: enforce\nmode: testing\nmx: a.b\nmax_age: 1\nmax_age: x\nversion: STSv2\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			return
		}
		if p.Version != "STSv1" || p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("accepted %+v", p)
		}
		if p.Mode != ModeNone && len(p.MX) == 0 {
			t.Fatalf("accepted mode %q without mx", p.Mode)
		}
		for _, mx := range p.MX {
			if !validMXPattern(mx) {
				t.Fatalf("accepted mx %q", mx)
			}
		}
		for _, d := range p.Duplicates {
			if d != "version" && d != "mode" && d != "max_age" {
				t.Fatalf("duplicate %q reported", d)
			}
		}
		// What was accepted reads back the same from its canonical form,
		// which has no duplicates.
		q, err := ParsePolicy([]byte(p.String()))
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", p.String(), err)
		}
		if q.Duplicates != nil {
			t.Fatalf("canonical form %q has duplicates %q", p.String(), q.Duplicates)
		}
		q.Duplicates = p.Duplicates
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v != %+v", p, q)
		}
	})
}
