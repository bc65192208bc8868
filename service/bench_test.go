package service

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/postgres"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
)

// BenchmarkIdleWake measures what one wake of the loop costs when nothing
// is due, with 100,000 domains: a round that claims nothing (ClaimDue, the
// state counts for the metrics) and NextWait (NextDue). The loop wakes at
// most once a second, so this is its idle load.
func BenchmarkIdleWake(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "store.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchIdleWake(b, st)
	})
	b.Run("postgres", func(b *testing.B) {
		st, err := postgres.Open(context.Background(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		benchIdleWake(b, st)
	})
}

func benchIdleWake(b *testing.B, st store.Store) {
	ctx := context.Background()
	const n = 100_000
	for i := 0; i < n; i += 10_000 {
		ds := make([]store.Domain, 0, 10_000)
		for j := i; j < i+10_000; j++ {
			ds = append(ds, store.Domain{Name: fmt.Sprintf("d%06d.test", j), State: store.StateTesting,
				MXPatterns: []string{"mx.example.test"}, NextCheck: t0.Add(time.Hour + time.Duration(j)*time.Millisecond), CreatedAt: t0})
		}
		if _, err := st.AddDomains(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	clock := testclock.New(t0)
	svc, err := New(Config{Store: st, Scheduler: newScheduler(b, st, &checker{}, clock, time.Hour), Now: clock.Now, Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if err := svc.Tick(ctx); err != nil {
			b.Fatal(err)
		}
		if w := svc.NextWait(ctx); w != time.Minute {
			b.Fatalf("wait %v", w)
		}
	}
}
