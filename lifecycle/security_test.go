package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
)

// A "*.suffix" MX pattern whose suffix is a public suffix would match any
// host under it ("*.com": every mail server with a certificate for its own
// name). The list's linter refuses it (listgen mx.public_suffix); no door
// declares it, and a stranger cannot slip it in beside the real MX hosts.
func TestPatternOverPublicSuffixRefused(t *testing.T) {
	e := memEnv(t)
	ctx := context.Background()
	for _, pats := range [][]string{
		{"mx.a.example", "*.com"},
		{"*.co.uk"},
		{"mx.a.example", ".net"},
		{"*.github.io"},
		{"*.test"},
	} {
		r := lifecycle.Request{Domain: "a.example", MXPatterns: pats, Contact: "hostmaster@a.example", Source: "web"}
		if _, err := e.l.Submit(ctx, r); !errors.Is(err, lifecycle.ErrInvalidRequest) {
			t.Errorf("Submit(%v) = %v, want ErrInvalidRequest", pats, err)
		}
		if _, err := e.l.AdmitProven(ctx, r, lifecycle.Evidence{By: lifecycle.ByOperator}); !errors.Is(err, lifecycle.ErrInvalidRequest) {
			t.Errorf("AdmitProven(%v) = %v, want ErrInvalidRequest", pats, err)
		}
	}
	if ds, _ := e.st.ListDomains(ctx, store.Filter{}); len(ds) != 0 {
		t.Errorf("refused requests stored domains: %+v", ds)
	}
	// Under a registrable name, a wildcard stays.
	for i, pats := range [][]string{{"*.a.example"}, {"*.mail.protection.outlook.com"}, {"*.example.test"}, {"*.example.co.uk"}} {
		r := lifecycle.Request{Domain: fmt.Sprintf("d%d.example", i), MXPatterns: pats, Source: "web"}
		if _, err := e.l.Submit(ctx, r); err != nil {
			t.Errorf("Submit(%v) = %v", pats, err)
		}
	}
}
