// Package sqlstore implements store.Store over database/sql for the SQL
// backends (SQLite and PostgreSQL). The queries are written once with "?"
// placeholders; a Dialect supplies what differs: placeholder style, how
// times are stored, row locking, and how batches are passed.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// Dialect is what differs between the SQL backends.
type Dialect struct {
	// Dollar rewrites "?" placeholders to $1, $2, ... (PostgreSQL).
	Dollar bool
	// IntTimes stores times as integer microseconds since the Unix epoch
	// (SQLite); otherwise times are bound as time.Time (timestamptz).
	IntTimes bool
	// LockRows is appended to the SELECTs that read a row before
	// changing it ("FOR UPDATE"), and SkipLocked to the claim query
	// ("FOR UPDATE SKIP LOCKED"); empty where the transaction already
	// holds the database's single write lock (SQLite).
	LockRows, SkipLocked string
	// SerializeWrites takes an in-process lock around write transactions,
	// so that goroutines queue in Go rather than spin in the database's
	// busy handler (SQLite has one writer at a time anyway).
	SerializeWrites bool
	// Arrays passes a batch's columns as arrays (unnest) instead of
	// multi-row VALUES (PostgreSQL): a few parameters and one cached
	// statement whatever the batch size.
	Arrays bool
	// NumberChecks: the checks table has no rowid to number its rows
	// (SQLite: clustered by domain, WITHOUT ROWID); the writer gives each
	// check an id, one more than the largest, under the write lock.
	NumberChecks bool
	// LocalReads: the database is a local SQLite file, so a status read
	// (DomainDetail) is one statement, detailOneQuery, which sees one
	// snapshot without BEGIN and ROLLBACK, and runs to its end instead of
	// watching its caller's context (a few index look-ups, at most a page
	// of rows): modernc.org/sqlite starts a goroutine per statement to
	// interrupt it when a cancellable context ends, which cost more than
	// the read's own work on two cores.
	LocalReads bool
	// MigrationLock is executed first in the migration transaction to
	// keep concurrent openers apart (empty: the transaction is enough).
	MigrationLock string
}

// Store is a store.Store over a *sql.DB.
type Store struct {
	db     *sql.DB
	d      Dialect
	wmu    sync.Mutex
	closed atomic.Bool
	// stmts holds the statements of the read paths (status pages read a
	// domain, its checks, decisions and proofs on every request), prepared
	// once per query text: parsing the SQL again on every call was a
	// quarter of such a read's CPU on SQLite. Only fixed query texts go
	// here (values are parameters), so it stays small.
	stmts sync.Map // rewritten query → *sql.Stmt
}

var _ store.Store = (*Store)(nil)

// New wraps db, which must already be migrated (see Migrate).
func New(db *sql.DB, d Dialect) *Store { return &Store{db: db, d: d} }

// DB returns the underlying database handle.
func (s *Store) DB() *sql.DB { return s.db }

// readQuery runs a read-only query, outside any transaction, through a
// statement prepared once for its text.
func (s *Store) readQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// prepared returns the statement for query (rewritten for the dialect),
// preparing it on first use.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	q := s.q(query)
	if v, ok := s.stmts.Load(q); ok {
		return v.(*sql.Stmt), nil
	}
	st, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if v, loaded := s.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return v.(*sql.Stmt), nil
	}
	return st, nil
}

// q rewrites a query for the dialect.
func (s *Store) q(query string) string {
	if !s.d.Dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// t converts a time for binding.
func (s *Store) t(t time.Time) any {
	t = store.Time(t)
	if s.d.IntTimes {
		if t.IsZero() {
			return int64(0)
		}
		return t.UnixMicro()
	}
	return t
}

// tp converts an optional time for binding.
func (s *Store) tp(t *time.Time) any {
	if t == nil {
		return nil
	}
	return s.t(*t)
}

// tscan scans a time column stored either way; NULL leaves it nil.
type tscan struct{ t **time.Time }

func (x tscan) Scan(src any) error {
	var t time.Time
	switch v := src.(type) {
	case nil:
		*x.t = nil
		return nil
	case int64:
		if v != 0 {
			t = time.UnixMicro(v).UTC()
		}
	case time.Time:
		t = store.Time(v)
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as a time", src)
	}
	*x.t = &t
	return nil
}

// tval scans a NOT NULL time column.
type tval struct{ t *time.Time }

func (x tval) Scan(src any) error {
	var p *time.Time
	if err := (tscan{&p}).Scan(src); err != nil {
		return err
	}
	if p != nil {
		*x.t = *p
	} else {
		*x.t = time.Time{}
	}
	return nil
}

// jlist scans a JSON array of strings; NULL or empty is an empty list.
type jlist struct{ l *[]string }

func (x jlist) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		return fmt.Errorf("sqlstore: cannot scan %T as a list", src)
	}
	*x.l = []string{}
	if len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, x.l)
}

func jsonList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// tx runs fn in a transaction, committing when it returns nil.
func (s *Store) tx(ctx context.Context, write bool, fn func(*sql.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if write && s.d.SerializeWrites {
		s.wmu.Lock()
		defer s.wmu.Unlock()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return s.wrap(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return s.wrap(tx.Commit())
}

// wrap marks the errors of a closed store with store.ErrClosed.
func (s *Store) wrap(err error) error {
	if err != nil && s.closed.Load() {
		return fmt.Errorf("%w: %v", store.ErrClosed, err)
	}
	return err
}

const domainCols = `name, state, contact, mx_patterns, want_enforce, follow_mtasts, source,
	created_at, updated_at, next_check, last_checked, checks_passed, passing_since, failing_since,
	claimed_by, claimed_until`

type scanner interface{ Scan(...any) error }

func scanDomain(r scanner) (store.Domain, error) {
	var d store.Domain
	var st string
	err := r.Scan(&d.Name, &st, &d.Contact, jlist{&d.MXPatterns}, &d.WantEnforce, &d.FollowMTASTS, &d.Source,
		tval{&d.CreatedAt}, tval{&d.UpdatedAt}, tval{&d.NextCheck}, tscan{&d.LastChecked}, &d.ChecksPassed,
		tscan{&d.PassingSince}, tscan{&d.FailingSince}, &d.ClaimedBy, tscan{&d.ClaimedUntil})
	d.State = store.State(st)
	return d, err
}

// AddDomain implements store.Store.
func (s *Store) AddDomain(ctx context.Context, d store.Domain) error {
	errs, err := s.AddDomains(ctx, []store.Domain{d})
	if err != nil {
		return err
	}
	return errs[0]
}

// AddDomains implements store.Store: one multi-row INSERT … ON CONFLICT DO
// NOTHING RETURNING name per chunk of rows.
func (s *Store) AddDomains(ctx context.Context, ds []store.Domain) ([]error, error) {
	errs := make([]error, len(ds))
	var ok []int
	first := map[string]int{}
	now := time.Now()
	rows := make([]store.Domain, len(ds))
	for i, d := range ds {
		if d.State == "" {
			d.State = store.StatePending
		}
		if d.CreatedAt.IsZero() {
			d.CreatedAt = now
		}
		if d.UpdatedAt.IsZero() {
			d.UpdatedAt = d.CreatedAt
		}
		rows[i] = d
		switch _, dup := first[d.Name]; {
		case !store.ValidName(d.Name) || !d.State.Valid():
			errs[i] = store.ErrInvalid
		case dup:
			errs[i] = store.ErrAlreadyExists
		default:
			first[d.Name] = i
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return errs, ctx.Err()
	}
	const chunk = 1000 // 13 parameters a row, SQLite allows 32766
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		for start := 0; start < len(ok); start += chunk {
			part := ok[start:min(start+chunk, len(ok))]
			args := make([]any, 0, len(part)*13)
			for _, i := range part {
				d := rows[i]
				args = append(args, d.Name, string(d.State), d.Contact, jsonList(d.MXPatterns), d.WantEnforce, d.FollowMTASTS, d.Source,
					s.t(d.CreatedAt), s.t(d.UpdatedAt), s.t(d.NextCheck), d.ChecksPassed, s.tp(d.PassingSince), s.tp(d.FailingSince))
			}
			// In domainCols order; last_checked and the claim start empty.
			row := "(" + strings.Join([]string{s.cast("text"), s.cast("text"), s.cast("text"), s.cast("text"), s.cast("bool"),
				s.cast("bool"), s.cast("text"), s.cast("time"), s.cast("time"), s.cast("time"), "NULL", s.cast("int"),
				s.cast("time"), s.cast("time"), "''", "NULL"}, ", ") + ")"
			res, err := tx.QueryContext(ctx, s.q(`INSERT INTO domains (`+domainCols+`) VALUES `+
				strings.TrimSuffix(strings.Repeat(row+", ", len(part)), ", ")+` ON CONFLICT (name) DO NOTHING RETURNING name`), args...)
			if err != nil {
				return err
			}
			added := map[string]bool{}
			for res.Next() {
				var n string
				if err := res.Scan(&n); err != nil {
					res.Close()
					return err
				}
				added[n] = true
			}
			res.Close()
			if err := res.Err(); err != nil {
				return err
			}
			for _, i := range part {
				if !added[rows[i].Name] {
					errs[i] = store.ErrAlreadyExists
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return errs, nil
}

// GetDomain implements store.Store.
func (s *Store) GetDomain(ctx context.Context, name string) (store.Domain, error) {
	st, err := s.prepared(ctx, `SELECT `+domainCols+` FROM domains WHERE name = ?`)
	if err != nil {
		return store.Domain{}, s.wrap(err)
	}
	d, err := scanDomain(st.QueryRowContext(ctx, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Domain{}, store.ErrNotFound
	}
	return d, s.wrap(err)
}

// ListDomains implements store.Store.
func (s *Store) ListDomains(ctx context.Context, f store.Filter) ([]store.Domain, error) {
	var where []string
	var args []any
	if len(f.States) > 0 {
		ph := make([]string, len(f.States))
		for i, st := range f.States {
			ph[i] = "?"
			args = append(args, string(st))
		}
		where = append(where, "state IN ("+strings.Join(ph, ", ")+")")
	}
	if f.After != "" {
		where = append(where, "name > ?")
		args = append(args, f.After)
	}
	query := `SELECT ` + domainCols + ` FROM domains`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY name"
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	out := []store.Domain{}
	for rows.Next() {
		d, err := scanDomain(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, s.wrap(rows.Err())
}

// CountByState implements store.Store.
func (s *Store) CountByState(ctx context.Context) (map[store.State]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM domains GROUP BY state`)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	m := map[store.State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		m[store.State(st)] = n
	}
	return m, s.wrap(rows.Err())
}

// UpdateDomain implements store.Store.
func (s *Store) UpdateDomain(ctx context.Context, d store.Domain) error {
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = time.Now()
	}
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE domains SET contact = ?, mx_patterns = ?, want_enforce = ?,
			follow_mtasts = ?, source = ?, next_check = ?, checks_passed = ?, passing_since = ?, failing_since = ?,
			updated_at = ? WHERE name = ?`),
			d.Contact, jsonList(d.MXPatterns), d.WantEnforce, d.FollowMTASTS, d.Source, s.t(d.NextCheck),
			d.ChecksPassed, s.tp(d.PassingSince), s.tp(d.FailingSince), s.t(d.UpdatedAt), d.Name)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		return nil
	})
}

// lockState reads a domain's state and claim, locking its row.
func (s *Store) lockState(ctx context.Context, tx *sql.Tx, name string) (store.State, string, error) {
	var st, by string
	err := tx.QueryRowContext(ctx, s.q(`SELECT state, claimed_by FROM domains WHERE name = ? `+s.d.LockRows), name).Scan(&st, &by)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", store.ErrNotFound
	}
	return store.State(st), by, err
}

func (s *Store) decide(ctx context.Context, tx *sql.Tx, name string, from, to store.State, reason string, at time.Time) error {
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE domains SET state = ?, updated_at = ? WHERE name = ?`),
		string(to), s.t(at), name); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, s.q(`INSERT INTO decisions (domain, at, from_state, to_state, reason) VALUES (?, ?, ?, ?, ?)`),
		name, s.t(at), string(from), string(to), reason)
	return err
}

// Transition implements store.Store.
func (s *Store) Transition(ctx context.Context, name string, from, to store.State, reason string, at time.Time) error {
	if !from.Valid() || !to.Valid() {
		return store.ErrInvalid
	}
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		st, _, err := s.lockState(ctx, tx, name)
		if err != nil {
			return err
		}
		if st != from {
			return store.ErrConflict
		}
		return s.decide(ctx, tx, name, from, to, reason, at)
	})
}

// RequestRemoval implements store.Store.
func (s *Store) RequestRemoval(ctx context.Context, name, reason string, at time.Time) error {
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		st, _, err := s.lockState(ctx, tx, name)
		if err != nil {
			return err
		}
		switch st {
		case store.StateRemoved:
			return store.ErrConflict
		case store.StateRemovalRequested:
			return nil
		}
		if err := s.supersede(ctx, tx, name, store.PurposeAdd, at); err != nil {
			return err
		}
		return s.decide(ctx, tx, name, st, store.StateRemovalRequested, reason, at)
	})
}

// precheck refuses an update before anything is written.
func precheck(u store.CheckUpdate) error {
	if u.Check.Domain == "" {
		return store.ErrInvalid
	}
	if u.Transition != nil && (!u.Transition.From.Valid() || !u.Transition.To.Valid()) {
		return store.ErrInvalid
	}
	if len(u.Check.Findings) > 0 && !json.Valid(u.Check.Findings) {
		return store.ErrInvalid
	}
	return nil
}

// RecordCheck implements store.Store.
func (s *Store) RecordCheck(ctx context.Context, u store.CheckUpdate) error {
	if err := precheck(u); err != nil {
		return err
	}
	errs, err := s.RecordChecks(ctx, []store.CheckUpdate{u})
	if err != nil {
		return err
	}
	return errs[0]
}

// RecordChecks implements store.Store. The updates are written set-wise —
// one SELECT … FOR UPDATE, one multi-row INSERT of checks, one UPDATE … FROM
// (VALUES …) of the domains and one INSERT of decisions per wave — so that a
// batch costs a few statements rather than a few per check. A wave holds
// each domain once; a domain repeated in the batch starts a new wave, so
// that its second update sees the first.
func (s *Store) RecordChecks(ctx context.Context, us []store.CheckUpdate) ([]error, error) {
	errs := make([]error, len(us))
	if len(us) == 0 {
		return errs, nil
	}
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		var wave []int
		seen := map[string]bool{}
		for i, u := range us {
			if errs[i] = precheck(u); errs[i] != nil {
				continue
			}
			if seen[u.Check.Domain] || len(wave) == maxWave {
				if err := s.applyWave(ctx, tx, us, wave, errs); err != nil {
					return err
				}
				wave, seen = wave[:0], map[string]bool{}
			}
			seen[u.Check.Domain] = true
			wave = append(wave, i)
		}
		return s.applyWave(ctx, tx, us, wave, errs)
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	return errs, nil
}

// maxWave bounds a wave's statements (SQLite allows 32766 parameters).
const maxWave = 1000

// cast marks a placeholder's type where the database needs it (PostgreSQL
// types VALUES columns from their first row).
func (s *Store) cast(kind string) string {
	if !s.d.Dollar {
		return "?"
	}
	switch kind {
	case "time":
		return "?::timestamptz"
	case "int":
		return "?::integer"
	case "bool":
		return "?::boolean"
	}
	return "?::text"
}

func placeholders(n, width int) string {
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// applyWave applies the updates us[idx] (distinct domains, prechecked),
// setting errs for those refused.
func (s *Store) applyWave(ctx context.Context, tx *sql.Tx, us []store.CheckUpdate, idx []int, errs []error) error {
	if len(idx) == 0 {
		return nil
	}
	// Lock the rows, in name order so that concurrent batches cannot
	// deadlock, and compare-and-set in Go.
	args := make([]any, 0, len(idx)*9)
	for _, i := range idx {
		args = append(args, us[i].Check.Domain)
	}
	var rows *sql.Rows
	var err error
	if s.d.Arrays {
		names := make([]string, len(idx))
		for k, i := range idx {
			names[k] = us[i].Check.Domain
		}
		rows, err = tx.QueryContext(ctx, `SELECT name, state, claimed_by FROM domains WHERE name = ANY($1::text[]) ORDER BY name `+s.d.LockRows, names)
	} else {
		rows, err = tx.QueryContext(ctx, s.q(`SELECT name, state, claimed_by FROM domains WHERE name IN (`+
			strings.TrimSuffix(strings.Repeat("?, ", len(idx)), ", ")+`) ORDER BY name `+s.d.LockRows), args...)
	}
	if err != nil {
		return err
	}
	type cur struct{ state, by string }
	found := make(map[string]cur, len(idx))
	for rows.Next() {
		var n string
		var c cur
		if err := rows.Scan(&n, &c.state, &c.by); err != nil {
			rows.Close()
			return err
		}
		found[n] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	ok := idx[:0:0]
	for _, i := range idx {
		u := us[i]
		c, exists := found[u.Check.Domain]
		switch {
		case !exists:
			errs[i] = store.ErrNotFound
		case u.Check.Worker != "" && c.by != u.Check.Worker:
			errs[i] = store.ErrConflict
		case u.Transition != nil && store.State(c.state) != u.Transition.From:
			errs[i] = store.ErrConflict
		default:
			ok = append(ok, i)
		}
	}
	if len(ok) == 0 {
		return nil
	}
	if s.d.Arrays {
		return s.writeArrays(ctx, tx, us, ok)
	}

	args = args[:0]
	cols, ncols, id := `domain, at, eligible, mx_hosts, findings, worker`, 6, int64(0)
	if s.d.NumberChecks {
		// Inside the write transaction, which holds SQLite's one write
		// lock: no other writer can take the same ids.
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) FROM checks`).Scan(&id); err != nil {
			return err
		}
		cols, ncols = `id, `+cols, 7
	}
	for _, i := range ok {
		c := us[i].Check
		var findings any
		if len(c.Findings) > 0 {
			findings = string(c.Findings)
		}
		if s.d.NumberChecks {
			id++
			args = append(args, id)
		}
		args = append(args, c.Domain, s.t(c.At), c.Eligible, jsonList(c.MXHosts), findings, c.Worker)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO checks (`+cols+`) VALUES `+
		placeholders(len(ok), ncols)), args...); err != nil {
		return err
	}

	args = args[:0]
	row := "(" + strings.Join([]string{s.cast("text"), s.cast("time"), s.cast("time"), s.cast("int"),
		s.cast("time"), s.cast("time"), s.cast("text"), s.cast("text")}, ", ") + ")"
	var values []string
	var decisions []int
	for _, i := range ok {
		u := us[i]
		var mx, to any
		if u.MXPatterns != nil {
			mx = jsonList(u.MXPatterns)
		}
		if u.Transition != nil {
			to = string(u.Transition.To)
			decisions = append(decisions, i)
		}
		args = append(args, u.Check.Domain, s.t(u.Check.At), s.t(u.NextCheck), u.ChecksPassed,
			s.tp(u.PassingSince), s.tp(u.FailingSince), mx, to)
		values = append(values, row)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE domains SET last_checked = v.column2, updated_at = v.column2,
		next_check = v.column3, checks_passed = v.column4, passing_since = v.column5, failing_since = v.column6,
		mx_patterns = COALESCE(v.column7, domains.mx_patterns), state = COALESCE(v.column8, domains.state),
		claimed_by = '', claimed_until = NULL
		FROM (VALUES `+strings.Join(values, ", ")+`) AS v WHERE domains.name = v.column1`), args...); err != nil {
		return err
	}

	if len(decisions) == 0 {
		return nil
	}
	args = args[:0]
	for _, i := range decisions {
		u := us[i]
		args = append(args, u.Check.Domain, s.t(u.Check.At), string(u.Transition.From), string(u.Transition.To), u.Transition.Reason)
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO decisions (domain, at, from_state, to_state, reason) VALUES `+
		placeholders(len(decisions), 5)), args...)
	return err
}

// writeArrays writes the checks, domain updates and decisions of us[ok]
// with one statement each, columns passed as arrays.
func (s *Store) writeArrays(ctx context.Context, tx *sql.Tx, us []store.CheckUpdate, ok []int) error {
	n := len(ok)
	var (
		names     = make([]string, n)
		at        = make([]time.Time, n)
		eligible  = make([]bool, n)
		mxHosts   = make([]string, n)
		findings  = make([]*string, n)
		workers   = make([]string, n)
		next      = make([]time.Time, n)
		passed    = make([]int32, n)
		passing   = make([]*time.Time, n)
		failing   = make([]*time.Time, n)
		patterns  = make([]*string, n)
		to        = make([]*string, n)
		dNames    []string
		dAt       []time.Time
		dFrom     []string
		dTo       []string
		dReason   []string
		normalise = func(t *time.Time) *time.Time {
			if t == nil {
				return nil
			}
			v := store.Time(*t)
			return &v
		}
	)
	for k, i := range ok {
		u := us[i]
		names[k] = u.Check.Domain
		at[k] = store.Time(u.Check.At)
		eligible[k] = u.Check.Eligible
		mxHosts[k] = jsonList(u.Check.MXHosts)
		if len(u.Check.Findings) > 0 {
			f := string(u.Check.Findings)
			findings[k] = &f
		}
		workers[k] = u.Check.Worker
		next[k] = store.Time(u.NextCheck)
		passed[k] = int32(u.ChecksPassed)
		passing[k] = normalise(u.PassingSince)
		failing[k] = normalise(u.FailingSince)
		if u.MXPatterns != nil {
			p := jsonList(u.MXPatterns)
			patterns[k] = &p
		}
		if u.Transition != nil {
			t := string(u.Transition.To)
			to[k] = &t
			dNames = append(dNames, u.Check.Domain)
			dAt = append(dAt, at[k])
			dFrom = append(dFrom, string(u.Transition.From))
			dTo = append(dTo, t)
			dReason = append(dReason, u.Transition.Reason)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO checks (domain, at, eligible, mx_hosts, findings, worker)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::boolean[], $4::text[], $5::text[], $6::text[])`,
		names, at, eligible, mxHosts, findings, workers); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE domains SET last_checked = v.at, updated_at = v.at,
		next_check = v.next, checks_passed = v.passed, passing_since = v.passing, failing_since = v.failing,
		mx_patterns = COALESCE(v.patterns, domains.mx_patterns), state = COALESCE(v.tostate, domains.state),
		claimed_by = '', claimed_until = NULL
		FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::integer[], $5::timestamptz[],
			$6::timestamptz[], $7::text[], $8::text[]) AS v(name, at, next, passed, passing, failing, patterns, tostate)
		WHERE domains.name = v.name`,
		names, at, next, passed, passing, failing, patterns, to); err != nil {
		return err
	}
	if len(dNames) == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO decisions (domain, at, from_state, to_state, reason)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[])`,
		dNames, dAt, dFrom, dTo, dReason)
	return err
}

// Checks implements store.Store.
func (s *Store) Checks(ctx context.Context, domain string, since time.Time, limit int) ([]store.CheckRecord, error) {
	query := checksQuery
	args := []any{domain}
	if !since.IsZero() {
		query += ` AND at >= ?`
		args = append(args, s.t(since))
	}
	query += checksOrder
	if limit > 0 {
		query += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.readQuery(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := scanChecks(rows, domain)
	return out, s.wrap(err)
}

// PruneChecks implements store.Store.
func (s *Store) PruneChecks(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM checks WHERE at < ?`), s.t(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, s.wrap(err)
}

// Decisions implements store.Store.
func (s *Store) Decisions(ctx context.Context, domain string) ([]store.Decision, error) {
	rows, err := s.readQuery(ctx, decisionsQuery, domain)
	if err != nil {
		return nil, s.wrap(err)
	}
	out, err := scanDecisions(rows, domain)
	return out, s.wrap(err)
}

// ClaimDue implements store.Store.
func (s *Store) ClaimDue(ctx context.Context, worker string, now time.Time, limit int, lease time.Duration) ([]store.Domain, error) {
	if worker == "" || limit <= 0 || lease <= 0 {
		return nil, store.ErrInvalid
	}
	var out []store.Domain
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE domains SET claimed_by = ?, claimed_until = ?
			WHERE name IN (SELECT name FROM domains
				WHERE state <> 'removed' AND next_check <= ? AND (claimed_until IS NULL OR claimed_until <= ?)
				ORDER BY next_check, name LIMIT ? `+s.d.SkipLocked+`)
			RETURNING `+domainCols),
			worker, s.t(now.Add(lease)), s.t(now), s.t(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		out = []store.Domain{}
		for rows.Next() {
			d, err := scanDomain(rows)
			if err != nil {
				return err
			}
			out = append(out, d)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, s.wrap(err)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].NextCheck.Equal(out[j].NextCheck) {
			return out[i].NextCheck.Before(out[j].NextCheck)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// nextDueScan bounds the rows NextDue reads.
const nextDueScan = 1000

// NextDue implements store.Store. It walks the domains_due index in
// NextCheck order and stops at the first row whose NextCheck is not before
// the earliest due time found so far: usually the first unclaimed row. At
// most nextDueScan rows are read (a driver may read the whole result
// before Close): when all of them are leased, the last one's NextCheck is
// an early enough answer.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT next_check, claimed_until FROM domains
		WHERE state <> 'removed' ORDER BY next_check, name LIMIT ?`), nextDueScan)
	if err != nil {
		return time.Time{}, s.wrap(err)
	}
	defer rows.Close()
	var next, last time.Time
	read := 0
	for rows.Next() {
		var nc time.Time
		var until *time.Time
		if err := rows.Scan(tval{&nc}, tscan{&until}); err != nil {
			return time.Time{}, s.wrap(err)
		}
		if !next.IsZero() && !nc.Before(next) {
			break
		}
		read, last = read+1, nc
		due := nc
		if until != nil && until.After(due) {
			due = *until
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	if err := rows.Err(); err != nil {
		return time.Time{}, s.wrap(err)
	}
	if read == nextDueScan && last.Before(next) {
		next = last // rows beyond the limit may be due before next
	}
	if next.IsZero() {
		return time.Time{}, store.ErrNotFound
	}
	return next, nil
}

// Release implements store.Store: one UPDATE per chunk of names.
func (s *Store) Release(ctx context.Context, worker string, names []string, next time.Time) error {
	set := `claimed_by = '', claimed_until = NULL`
	var head []any
	if !next.IsZero() {
		set += `, next_check = ?`
		head = append(head, s.t(next))
	}
	head = append(head, worker)
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		for start := 0; start < len(names); start += maxWave {
			part := names[start:min(start+maxWave, len(names))]
			args := append([]any{}, head...)
			var err error
			if s.d.Arrays {
				_, err = tx.ExecContext(ctx, s.q(`UPDATE domains SET `+set+` WHERE claimed_by = ? AND name = ANY(?::text[])`), append(args, part)...)
			} else {
				for _, n := range part {
					args = append(args, n)
				}
				_, err = tx.ExecContext(ctx, s.q(`UPDATE domains SET `+set+` WHERE claimed_by = ? AND name IN (`+
					strings.TrimSuffix(strings.Repeat("?, ", len(part)), ", ")+`)`), args...)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// NextSerial implements store.Store.
func (s *Store) NextSerial(ctx context.Context) (int64, error) {
	var n int64
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE serial SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&n)
	})
	return n, s.wrap(err)
}

// SaveList implements store.Store.
func (s *Store) SaveList(ctx context.Context, l store.ListRecord) error {
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO lists (serial, timestamp, expires, sha256, entries) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (serial) DO NOTHING`), l.Serial, s.t(l.Timestamp), s.t(l.Expires), l.SHA256, l.Entries)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrAlreadyExists
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE serial SET value = CASE WHEN value < ? THEN ? ELSE value END WHERE id = 1`), l.Serial, l.Serial)
		return err
	})
}

// LatestList implements store.Store.
func (s *Store) LatestList(ctx context.Context) (store.ListRecord, error) {
	var l store.ListRecord
	err := s.db.QueryRowContext(ctx, `SELECT serial, timestamp, expires, sha256, entries FROM lists ORDER BY serial DESC LIMIT 1`).
		Scan(&l.Serial, tval{&l.Timestamp}, tval{&l.Expires}, &l.SHA256, &l.Entries)
	if errors.Is(err, sql.ErrNoRows) {
		return l, store.ErrNotFound
	}
	return l, s.wrap(err)
}

// AddOptOut implements store.Store.
func (s *Store) AddOptOut(ctx context.Context, domain, reason string, at time.Time) error {
	if domain == "" {
		return store.ErrInvalid
	}
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO opt_out (domain, reason, at) VALUES (?, ?, ?) ON CONFLICT (domain) DO NOTHING`),
			domain, reason, s.t(at))
		return err
	})
}

// RemoveOptOut implements store.Store.
func (s *Store) RemoveOptOut(ctx context.Context, domain string) error {
	return s.tx(ctx, true, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM opt_out WHERE domain = ?`), domain)
		return err
	})
}

// IsOptedOut implements store.Store.
func (s *Store) IsOptedOut(ctx context.Context, domain string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM opt_out WHERE domain = ?`), domain).Scan(&n)
	return n > 0, s.wrap(err)
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.closed.Store(true)
	s.stmts.Range(func(k, v any) bool {
		v.(*sql.Stmt).Close()
		s.stmts.Delete(k)
		return true
	})
	return s.db.Close()
}
