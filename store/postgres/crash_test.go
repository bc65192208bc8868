package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/burst"
	"github.com/starttls-preload/starttls-preload/store/internal/pgtest"
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
// writes, three times, and finds the store consistent after each.
func TestCrashSafety(t *testing.T) {
	burst.CrashScenario(t, openTarget, pgtest.DSN(t), nil)
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
