package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"testing/fstest"
	"time"

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

// TestMigrateChecksByDomain: a database of the second schema, whose
// checks of two domains were written interleaved, opens with every check
// kept under its id, a domain's checks read in one descent of the table's
// key (no sort, no look-up by rowid), and new checks numbered after the
// largest id.
func TestMigrateChecksByDomain(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), sqlite.FileName)
	fsys := fstest.MapFS{}
	for _, n := range []string{"0001_init.sql", "0002_proofs.sql"} {
		b, err := os.ReadFile("migrations/" + n)
		if err != nil {
			t.Fatal(err)
		}
		fsys[n] = &fstest.MapFile{Data: b}
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlstore.Migrate(ctx, db, fsys, sqlstore.Dialect{IntTimes: true}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO domains (name, state, created_at, updated_at, next_check) VALUES ('a.example', 'validating', 1, 1, 1), ('b.example', 'validating', 1, 1, 1)`,
		`INSERT INTO checks (domain, at, eligible, mx_hosts, findings, worker) VALUES
			('a.example', 1000000, 1, '["mx.a.example"]', '{"n":1}', 'w'),
			('b.example', 1000000, 0, '[]', NULL, ''),
			('a.example', 2000000, 0, '[]', '{"n":3}', 'w'),
			('b.example', 3000000, 1, '["mx.b.example"]', '{"n":4}', '')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := open(t, path)
	got, err := s.Checks(ctx, "a.example", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.CheckRecord{
		{ID: 3, Domain: "a.example", At: time.UnixMicro(2000000).UTC(), MXHosts: []string{}, Findings: json.RawMessage(`{"n":3}`), Worker: "w"},
		{ID: 1, Domain: "a.example", At: time.UnixMicro(1000000).UTC(), Eligible: true, MXHosts: []string{"mx.a.example"}, Findings: json.RawMessage(`{"n":1}`), Worker: "w"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("checks of a.example after the migration:\n got %+v\nwant %+v", got, want)
	}
	var plan []string
	rows, err := s.DB().QueryContext(ctx, `EXPLAIN QUERY PLAN SELECT id, domain, at, eligible, mx_hosts, findings, worker FROM checks WHERE domain = ? ORDER BY at DESC, id DESC LIMIT 100`, "a.example")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	rows.Close()
	if len(plan) != 1 || plan[0] != "SEARCH checks USING PRIMARY KEY (domain=?)" {
		t.Errorf("query plan of a domain's checks: %q, want one search of the primary key", plan)
	}

	if err := s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "b.example", At: time.UnixMicro(4000000), Eligible: true}, NextCheck: time.UnixMicro(5000000)}); err != nil {
		t.Fatal(err)
	}
	got, err = s.Checks(ctx, "b.example", time.Time{}, 1)
	if err != nil || len(got) != 1 || got[0].ID != 5 {
		t.Errorf("a new check after the migration: %+v, %v; want id 5", got, err)
	}
	n, err := s.PruneChecks(ctx, time.UnixMicro(2500000))
	if err != nil || n != 3 {
		t.Errorf("pruning the three older checks: %d, %v", n, err)
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
