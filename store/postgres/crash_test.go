package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/burst"
	"github.com/starttls-preload/starttls-preload/store/postgres"
)

func TestMain(m *testing.M) {
	if burst.IsChild() {
		os.Exit(burst.ChildMain(openTarget))
	}
	os.Exit(m.Run())
}

func openTarget(ctx context.Context, dsn string) (store.Store, error) { return postgres.Open(ctx, dsn) }

// TestCrashSafety kills a client process with SIGKILL during a burst of
// writes, three times, then inside one long transaction, and finds the
// store consistent after each.
func TestCrashSafety(t *testing.T) {
	dsn := pgtest.DSN(t)
	name := fmt.Sprintf("crash-%d", os.Getpid())
	probe, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close(context.Background()) })
	// A transaction that has written holds a transaction id.
	inTx := func(t *testing.T) bool {
		var n int
		if err := probe.QueryRow(context.Background(), `SELECT COUNT(*) FROM pg_stat_activity
			WHERE application_name = $1 AND backend_xid IS NOT NULL`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	burst.CrashScenario(t, openTarget, pgtest.WithParam(dsn, "application_name", name), nil, inTx)
}

// TestWorkers: 4 worker processes and 10,000 domains; every due domain is
// checked exactly once per round, no transition is lost, and the claims of
// a worker killed mid-round are picked up by the others once its lease has
// expired.
func TestWorkers(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	burst.WorkersScenario(t, openTarget, pgtest.DSN(t), n)
}
