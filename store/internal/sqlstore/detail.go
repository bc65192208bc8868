package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"

	"github.com/starttls-preload/starttls-preload/store"
)

// The read statements that Checks, Decisions and DomainDetail share (one
// prepared statement per text). The domain asked for is not read back:
// every row would carry a copy of it.
const (
	checksQuery    = `SELECT id, at, eligible, mx_hosts, findings, worker FROM checks WHERE domain = ?`
	checksOrder    = ` ORDER BY at DESC, id DESC`
	decisionsQuery = `SELECT id, at, from_state, to_state, reason FROM decisions WHERE domain = ? ORDER BY id`
	// detailDomain is the domain's row and whether it has a proof neither
	// used nor superseded.
	detailDomain = `SELECT ` + domainCols + `, EXISTS (SELECT 1 FROM proofs WHERE proofs.domain = domains.name
		AND proofs.used_at IS NULL AND proofs.superseded_at IS NULL) FROM domains WHERE name = ?`
)

// DomainDetail implements store.Store: on SQLite (LocalReads) with
// detailOne, one statement; otherwise three prepared statements in one
// read-only transaction at REPEATABLE READ, so that the three see one
// snapshot.
func (s *Store) DomainDetail(ctx context.Context, name string, checkLimit int) (store.Detail, error) {
	if s.d.LocalReads {
		return s.detailOne(context.WithoutCancel(ctx), name, checkLimit)
	}
	checks, checkArgs := checksQuery+checksOrder, []any{name}
	if checkLimit > 0 {
		checks += ` LIMIT ?`
		checkArgs = append(checkArgs, checkLimit)
	}
	var stmts [3]*sql.Stmt
	for i, q := range []string{detailDomain, checks, decisionsQuery} {
		st, err := s.prepared(ctx, q)
		if err != nil {
			return store.Detail{}, s.wrap(err)
		}
		stmts[i] = st
	}
	opts := &sql.TxOptions{ReadOnly: true}
	if s.d.Dollar {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return store.Detail{}, s.wrap(err)
	}
	defer tx.Rollback() // read only: nothing to commit
	var out store.Detail
	out.Domain, err = scanDomain(extraScan{tx.StmtContext(ctx, stmts[0]).QueryRowContext(ctx, name), []any{&out.UnusedProofs}})
	if errors.Is(err, sql.ErrNoRows) {
		return store.Detail{}, store.ErrNotFound
	}
	if err != nil {
		return store.Detail{}, s.wrap(err)
	}
	rows, err := tx.StmtContext(ctx, stmts[1]).QueryContext(ctx, checkArgs...)
	if err != nil {
		return store.Detail{}, s.wrap(err)
	}
	if out.Checks, err = scanChecks(rows, name); err != nil {
		return store.Detail{}, s.wrap(err)
	}
	if rows, err = tx.StmtContext(ctx, stmts[2]).QueryContext(ctx, name); err != nil {
		return store.Detail{}, s.wrap(err)
	}
	if out.Decisions, err = scanDecisions(rows, name); err != nil {
		return store.Detail{}, s.wrap(err)
	}
	return out, nil
}

// extraScan scans the columns after those its caller asks for into extra.
type extraScan struct {
	r     scanner
	extra []any
}

func (x extraScan) Scan(dest ...any) error { return x.r.Scan(append(dest, x.extra...)...) }

// scanChecks reads the rows of checksQuery for domain and closes them;
// never nil.
func scanChecks(rows *sql.Rows, domain string) ([]store.CheckRecord, error) {
	defer rows.Close()
	out := []store.CheckRecord{}
	for rows.Next() {
		c := store.CheckRecord{Domain: domain}
		var findings sql.NullString
		if err := rows.Scan(&c.ID, tval{&c.At}, &c.Eligible, jlist{&c.MXHosts}, &findings, &c.Worker); err != nil {
			return nil, err
		}
		if findings.Valid && findings.String != "" {
			c.Findings = json.RawMessage(findings.String)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// scanDecisions reads the rows of decisionsQuery for domain and closes
// them; never nil.
func scanDecisions(rows *sql.Rows, domain string) ([]store.Decision, error) {
	defer rows.Close()
	out := []store.Decision{}
	for rows.Next() {
		d := store.Decision{Domain: domain}
		var from, to string
		if err := rows.Scan(&d.ID, tval{&d.At}, &from, &to, &d.Reason); err != nil {
			return nil, err
		}
		d.From, d.To = store.State(from), store.State(to)
		out = append(out, d)
	}
	return out, rows.Err()
}
