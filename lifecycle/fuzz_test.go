package lifecycle_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"unicode"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
)

// FuzzToken: whatever domain and token a stranger sends to the link's GET
// and POST, nothing panics, and only the mailed token of that domain
// proves anything.
func FuzzToken(f *testing.F) {
	f.Add("d.test", "aaaaaaaaaaaaaaaaaaaaaaaaaa")
	f.Add("d.test", "")
	f.Add("d.test", "aebagbafaydqqcikbmga2dqpca")
	f.Add("d.test", "AEBAGBAFAYDQQCIKBMGA2DQPCA")
	f.Add("D.test.", "AAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add("d.test", strings.Repeat("a", 100))
	f.Add("other.test", "aebagbafaydqqcikbmga2dqpca")
	f.Add("d.test", "aebagbafaydqqcikbmga2dqpc\x00")
	f.Fuzz(func(t *testing.T, domain, token string) {
		ctx := context.Background()
		st := memstore.New()
		// Fixed random bits: the token of d.test is known to the seeds.
		l := &lifecycle.Lifecycle{Store: st, Rand: bytes.NewReader(bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, 4))}
		p, err := l.Submit(ctx, lifecycle.Request{Domain: "d.test", MXPatterns: []string{"mx.d.test"}})
		if err != nil {
			t.Fatal(err)
		}
		real := domain == "d.test" && strings.EqualFold(token, p.Token)
		if _, err := l.PeekToken(ctx, domain, token); (err == nil) != real {
			t.Fatalf("PeekToken(%q, %q) = %v; the token is %q", domain, token, err, p.Token)
		}
		ch, err := l.ConfirmToken(ctx, domain, token)
		if (err == nil) != real {
			t.Fatalf("ConfirmToken(%q, %q) = %v; the token is %q", domain, token, err, p.Token)
		}
		if err != nil && !errors.Is(err, lifecycle.ErrTokenInvalid) {
			t.Fatalf("ConfirmToken(%q, %q) = %v, want ErrTokenInvalid", domain, token, err)
		}
		d, _ := st.GetDomain(ctx, "d.test")
		if want := map[bool]store.State{true: store.StateValidating, false: store.StatePending}[real]; d.State != want || (real && ch.To != want) {
			t.Fatalf("state %s, want %s", d.State, want)
		}
	})
}

// FuzzSubmit: a submission with any fields is refused with
// ErrInvalidRequest or stored with a normalised contact and a source
// without control characters, never one that could reach a mail header.
func FuzzSubmit(f *testing.F) {
	f.Add("d.test", "postmaster@d.test", "web", "mx.d.test")
	f.Add("d.test", "a@b.test\r\nBcc: c@d.test", "web\n", "*.d.test")
	f.Add("d.test", "\"quoted\"@d.test", "https://github.com/o/r/pull/1", "mx.*.test")
	f.Add("xn--bcher-kva.test", "<a@b.test>", strings.Repeat("é", 400), "MX.D.TEST.")
	f.Fuzz(func(t *testing.T, domain, contact, source, pattern string) {
		ctx := context.Background()
		st := memstore.New()
		l := &lifecycle.Lifecycle{Store: st}
		_, err := l.Submit(ctx, lifecycle.Request{Domain: domain, Contact: contact, Source: source, MXPatterns: []string{pattern}})
		if err != nil {
			if !errors.Is(err, lifecycle.ErrInvalidRequest) {
				t.Fatalf("Submit: %v, want nil or ErrInvalidRequest", err)
			}
			if ds, _ := st.ListDomains(ctx, store.Filter{}); len(ds) != 0 {
				t.Fatalf("a refused submission stored %+v", ds)
			}
			return
		}
		d, err := st.GetDomain(ctx, domain)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(d.Contact, "\r\n<>") || strings.IndexFunc(d.Source, unicode.IsControl) >= 0 || len(d.Source) > 512 {
			t.Fatalf("stored contact %q, source %q", d.Contact, d.Source)
		}
		if d.Contact != "" && !strings.Contains(d.Contact, "@") {
			t.Fatalf("stored contact %q is not an address", d.Contact)
		}
	})
}
