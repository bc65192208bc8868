package service

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
)

// BenchmarkIdleWake measures what one wake of the loop costs when nothing
// is due, on SQLite with 100,000 domains: a round that claims nothing
// (ClaimDue, the state counts for the metrics) and NextWait (NextDue). The
// loop wakes at most once a second, so this is its idle load.
func BenchmarkIdleWake(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "store.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
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
