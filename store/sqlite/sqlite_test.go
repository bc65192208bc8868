package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/sqlstore"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
	"github.com/starttls-preload/starttls-preload/store/storetest"
)

func open(t *testing.T, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), sqlite.FileName))
	})
}

// TestMigrateIdempotent: opening an existing database again applies no
// migration twice and keeps the data.
func TestMigrateIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", sqlite.FileName)
	ctx := context.Background()
	s := open(t, path)
	if err := s.AddDomain(ctx, store.Domain{Name: "keep.example"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = open(t, path)
	if _, err := s.GetDomain(ctx, "keep.example"); err != nil {
		t.Fatalf("after reopening: %v", err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	migs, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(migs) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migs))
	}
	for _, f := range []string{path, path + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	var mode string
	if err := s.DB().QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
	// Every connection of the pool maps the file for reading.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := s.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	for i, c := range conns {
		var n int64
		if err := c.QueryRowContext(ctx, `PRAGMA mmap_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != sqlite.MmapSize {
			t.Errorf("connection %d: mmap_size = %d, want %d", i, n, sqlite.MmapSize)
		}
	}
}

// TestMigrateTokenAway: a database made by the first schema, whose domains
// kept a plaintext token, opens with its domains intact, the token column
// gone and a proofs table in its place.
func TestMigrateTokenAway(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	init, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, db, fstest.MapFS{"0001_init.sql": {Data: init}}, sqlstore.Dialect{IntTimes: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO domains (name, state, token, created_at, updated_at, next_check) VALUES ('old.example', 'pending', 'plaintext', 1, 1, 1)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, path)
	d, err := s.GetDomain(ctx, "old.example")
	if err != nil || d.State != store.StatePending || d.Source != "" {
		t.Fatalf("old domain after the migration: %+v, %v", d, err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM pragma_table_info('domains') WHERE name = 'token'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("the plaintext token column is still there")
	}
	ps, err := s.Proofs(ctx, "old.example")
	if err != nil || len(ps) != 0 {
		t.Errorf("proofs of the old domain: %v, %v", ps, err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
