package validate_test

import (
	"context"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/validate"
)

func TestLookupTXT(t *testing.T) {
	d := lab.NewDNS(t, "127.0.0.1:0")
	d.Add(`_starttls-preload.a.test. 300 IN TXT "starttls-preload-verify=" "abc"`,
		`_starttls-preload.a.test. 300 IN TXT "other"`,
		`a.test. 300 IN MX 10 mx.a.test.`)
	d.SetRcode("_starttls-preload.fail.test", dns.TypeTXT, dns.RcodeServerFailure)
	v, err := validate.New(validate.Config{Resolver: d.Addr(), AllowPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := v.LookupTXT(ctx, "_starttls-preload.a.test")
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"other", "starttls-preload-verify=abc"}) {
		t.Errorf("LookupTXT = %q, %v; want the two records, strings joined", got, err)
	}
	for _, name := range []string{"_starttls-preload.none.test", "a.test"} {
		if got, err := v.LookupTXT(ctx, name); err != nil || len(got) != 0 {
			t.Errorf("LookupTXT(%s) = %q, %v; want nothing, no error", name, got, err)
		}
	}
	if _, err := v.LookupTXT(ctx, "_starttls-preload.fail.test"); err == nil {
		t.Error("LookupTXT of a SERVFAIL name gave no error")
	}
}
