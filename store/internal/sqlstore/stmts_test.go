package sqlstore

import (
	"context"
	"testing"
	"time"
)

// TestReadStatementsPreparedOnce: the read paths reuse one prepared
// statement per query text, whatever the limit asked (a parameter, not
// part of the text), and the limit is still applied.
func TestReadStatementsPreparedOnce(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE checks (id INTEGER PRIMARY KEY, domain TEXT NOT NULL, at INTEGER NOT NULL, eligible BOOLEAN NOT NULL,
			mx_hosts TEXT NOT NULL DEFAULT '[]', findings TEXT, worker TEXT NOT NULL DEFAULT '')`,
		`CREATE TABLE decisions (id INTEGER PRIMARY KEY, domain TEXT NOT NULL, at INTEGER NOT NULL,
			from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT NOT NULL)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := db.Exec(`INSERT INTO checks (domain, at, eligible) VALUES ('a.test', ?, 1)`, t0.Add(time.Duration(i)*time.Hour).UnixMilli()); err != nil {
			t.Fatal(err)
		}
	}
	s := New(db, Dialect{IntTimes: true, SerializeWrites: true})
	for limit := range 20 {
		cs, err := s.Checks(ctx, "a.test", time.Time{}, limit)
		if err != nil {
			t.Fatal(err)
		}
		if want := min(5, limit); limit > 0 && len(cs) != want || limit == 0 && len(cs) != 5 {
			t.Fatalf("limit %d: %d checks", limit, len(cs))
		}
		if _, err := s.Decisions(ctx, "a.test"); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	s.stmts.Range(func(any, any) bool { n++; return true })
	if n != 3 { // checks without and with a limit, decisions
		t.Errorf("%d statements prepared, want 3", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.stmts.Range(func(any, any) bool { t.Error("a statement survived Close"); return false })
}
