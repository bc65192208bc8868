package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"

	sqlitedriver "modernc.org/sqlite"

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
// three times, then inside one long transaction, and finds the store
// consistent after each.
func TestCrashSafety(t *testing.T) {
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	// The child holds the write lock from BEGIN IMMEDIATE to COMMIT: while
	// a BEGIN IMMEDIATE here fails at once, its transaction is open.
	probe, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { probe.Close() })
	inTx := func(t *testing.T) bool {
		conn, err := probe.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
			var se *sqlitedriver.Error
			if errors.As(err, &se) && se.Code()&0xff == 5 { // SQLITE_BUSY
				return true
			}
			t.Fatal(err)
		}
		conn.ExecContext(context.Background(), "ROLLBACK")
		return false
	}
	burst.CrashScenario(t, openTarget, path, func(t *testing.T, s store.Store) {
		var res string
		if err := s.(*sqlite.Store).DB().QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
			t.Fatal(err)
		}
		if res != "ok" {
			t.Fatalf("integrity_check: %s", res)
		}
	}, inTx)
}

// TestWorkers: several processes sharing one SQLite file each check every
// due domain exactly once, and pick up a killed worker's claims.
func TestWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	burst.WorkersScenario(t, openTarget, filepath.Join(t.TempDir(), sqlite.FileName), 2000)
}
