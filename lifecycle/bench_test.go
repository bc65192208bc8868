package lifecycle_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/store/postgres"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
)

// BenchmarkSubmitConfirm measures a submission and the POST of its mailed
// link (two transactions, one op) on each store.
func BenchmarkSubmitConfirm(b *testing.B) {
	for _, bk := range []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memstore", func(b *testing.B) store.Store { return memstore.New() }},
		{"sqlite", func(b *testing.B) store.Store {
			s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
		{"postgres", func(b *testing.B) store.Store {
			s, err := postgres.Open(context.Background(), pgtest.DSN(b))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		b.Run(bk.name, func(b *testing.B) {
			ctx := context.Background()
			l := &lifecycle.Lifecycle{Store: bk.open(b)}
			i := 0
			for b.Loop() {
				name := fmt.Sprintf("d%d.test", i)
				i++
				p, err := l.Submit(ctx, lifecycle.Request{Domain: name, MXPatterns: []string{"mx." + name}, Source: "web"})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.ConfirmToken(ctx, name, p.Token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
