package postgres_test

import (
	"context"
	"database/sql"
	"os"
	"sync"
	"testing"
	"testing/fstest"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver

	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/internal/sqlstore"
	"github.com/starttls-preload/starttls-preload/store/postgres"
	"github.com/starttls-preload/starttls-preload/store/storetest"
)

func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, pgtest.DSN(t)) })
}

// TestMigrateConcurrent: several processes opening a new database at once
// apply each migration exactly once.
func TestMigrateConcurrent(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := open(t, dsn)
	var n int
	if err := s.DB().QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	migs, err := os.ReadDir("migrations")
	if err != nil {
		t.Fatal(err)
	}
	if n != len(migs) {
		t.Errorf("schema_migrations has %d rows, want %d", n, len(migs))
	}
	if err := s.AddDomain(context.Background(), store.Domain{Name: "a.example"}); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		s, err := postgres.Open(context.Background(), pgtest.DSN(b))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}

// TestMigrateTokenAway: a database made by the first schema, whose domains
// kept a plaintext token, opens with its domains intact, the token column
// gone and a proofs table in its place.
func TestMigrateTokenAway(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.DSN(t)
	init, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, db, fstest.MapFS{"0001_init.sql": {Data: init}}, sqlstore.Dialect{Dollar: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO domains (name, state, token, created_at, updated_at, next_check) VALUES ('old.example', 'pending', 'plaintext', now(), now(), now())`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, dsn)
	d, err := s.GetDomain(ctx, "old.example")
	if err != nil || d.State != store.StatePending || d.Source != "" {
		t.Fatalf("old domain after the migration: %+v, %v", d, err)
	}
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'domains' AND column_name = 'token'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("the plaintext token column is still there")
	}
	if ps, err := s.Proofs(ctx, "old.example"); err != nil || len(ps) != 0 {
		t.Errorf("proofs of the old domain: %v, %v", ps, err)
	}
}
