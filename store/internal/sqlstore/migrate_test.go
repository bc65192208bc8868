package sqlstore

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"
)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "m.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func versions(t *testing.T, db *sql.DB) []int {
	t.Helper()
	rows, err := db.Query(`SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

// TestMigrateUpgrade: a later binary's new migration is applied once to an
// existing database; the old ones are not run again.
func TestMigrateUpgrade(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	v1 := fstest.MapFS{"0001_init.sql": {Data: []byte(`CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);`)}}
	for range 2 {
		if err := Migrate(ctx, db, v1, Dialect{IntTimes: true}); err != nil {
			t.Fatal(err)
		}
	}
	v2 := fstest.MapFS{
		"0001_init.sql":    v1["0001_init.sql"],
		"0002_more.sql":    {Data: []byte(`ALTER TABLE a ADD COLUMN y TEXT NOT NULL DEFAULT 'new';`)},
		"README":           {Data: []byte("not a migration")},
		"0010_later.sql":   {Data: []byte(`CREATE TABLE b (z INTEGER);`)},
		"0003_between.sql": {Data: []byte(`INSERT INTO a (x) VALUES (3);`)},
	}
	for range 2 {
		if err := Migrate(ctx, db, v2, Dialect{IntTimes: true}); err != nil {
			t.Fatal(err)
		}
	}
	if got := versions(t, db); len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 3 || got[3] != 10 {
		t.Errorf("applied versions %v, want [1 2 3 10]", got)
	}
	var n int
	var y string
	if err := db.QueryRow(`SELECT COUNT(*), MIN(y) FROM a`).Scan(&n, &y); err != nil {
		t.Fatal(err)
	}
	if n != 2 || y != "new" {
		t.Errorf("table a: %d rows, y=%q; want 2 rows, y=new (each migration once)", n, y)
	}
}

// TestMigrateFailure: a failing migration leaves neither its changes nor
// its schema_migrations row, and is retried on the next start.
func TestMigrateFailure(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	bad := fstest.MapFS{
		"0001_init.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)},
		"0002_bad.sql":  {Data: []byte(`CREATE TABLE c (x INTEGER); INSERT INTO nosuchtable VALUES (1);`)},
	}
	if err := Migrate(ctx, db, bad, Dialect{}); err == nil {
		t.Fatal("a failing migration was accepted")
	}
	if got := versions(t, db); len(got) != 1 || got[0] != 1 {
		t.Errorf("applied versions %v, want [1]", got)
	}
	if _, err := db.Exec(`SELECT * FROM c`); err == nil {
		t.Error("the failed migration's table c exists")
	}
	if err := Migrate(ctx, db, fstest.MapFS{"x_init.sql": {Data: []byte(``)}}, Dialect{}); err == nil {
		t.Error("a migration without a version number was accepted")
	}
}

func TestPlaceholders(t *testing.T) {
	s := &Store{d: Dialect{Dollar: true}}
	if got, want := s.q(`SELECT a FROM t WHERE b = ? AND c IN (`+placeholders(2, 2)+`)`), `SELECT a FROM t WHERE b = $1 AND c IN (($2, $3), ($4, $5))`; got != want {
		t.Errorf("q = %q, want %q", got, want)
	}
	if got := (&Store{}).q(`x = ?`); got != `x = ?` {
		t.Errorf("SQLite query rewritten: %q", got)
	}
}
