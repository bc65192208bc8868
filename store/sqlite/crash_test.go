package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/burst"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
)

func TestMain(m *testing.M) {
	if burst.IsChild() {
		os.Exit(burst.ChildMain(openTarget))
	}
	os.Exit(m.Run())
}

func openTarget(ctx context.Context, path string) (store.Store, error) { return sqlite.Open(ctx, path) }

// TestCrashSafety kills a process with SIGKILL during a burst of writes,
// three times, and finds the store consistent after each.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	burst.CrashScenario(t, openTarget, path, func(t *testing.T, s store.Store) {
		var res string
		if err := s.(*sqlite.Store).DB().QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
			t.Fatal(err)
		}
		if res != "ok" {
			t.Fatalf("integrity_check: %s", res)
		}
	})
}

// TestWorkers: several processes sharing one SQLite file each check every
// due domain exactly once, and pick up a killed worker's claims.
func TestWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	burst.WorkersScenario(t, openTarget, filepath.Join(t.TempDir(), sqlite.FileName), 2000)
}
