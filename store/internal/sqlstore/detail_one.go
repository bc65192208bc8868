package sqlstore

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/starttls-preload/starttls-preload/store"
)

// detailOneQuery reads a domain, its latest checks and its decisions in
// one SQLite statement, so in one read snapshot without BEGIN and
// ROLLBACK: a row of kind 0 with the domain's columns as one JSON array
// (domainCols, in order) and whether it has an open proof; one of kind 1
// per check (checksQuery's columns); one of kind 2 per decision
// (decisionsQuery's), in no particular order. Its rows are as narrow as
// a check's, so a long history costs no more per row than checksQuery.
// ?1 is the domain, ?2 the checks' limit (-1: none, SQLite's no limit).
const detailOneQuery = `SELECT 0, json_array(` + domainCols + `), EXISTS (SELECT 1 FROM proofs WHERE proofs.domain = domains.name
		AND proofs.used_at IS NULL AND proofs.superseded_at IS NULL), NULL, NULL, NULL, NULL FROM domains WHERE name = ?1
	UNION ALL
	SELECT 1, id, at, eligible, mx_hosts, findings, worker FROM (SELECT id, at, eligible, mx_hosts, findings, worker
		FROM checks WHERE domain = ?1` + checksOrder + ` LIMIT ?2)
	UNION ALL
	SELECT 2, id, at, from_state, to_state, reason, NULL FROM decisions WHERE domain = ?1`

// detailOne is DomainDetail with detailOneQuery.
func (s *Store) detailOne(ctx context.Context, name string, checkLimit int) (store.Detail, error) {
	st, err := s.prepared(ctx, detailOneQuery)
	if err != nil {
		return store.Detail{}, s.wrap(err)
	}
	limit := checkLimit
	if limit <= 0 {
		limit = -1
	}
	rows, err := st.QueryContext(ctx, name, limit)
	if err != nil {
		return store.Detail{}, s.wrap(err)
	}
	defer rows.Close()
	out := store.Detail{Checks: []store.CheckRecord{}, Decisions: []store.Decision{}}
	found := false
	var (
		kind int
		v    [6]any
	)
	dest := []any{&kind, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]}
	for rows.Next() {
		clear(v[:])
		if err := rows.Scan(dest...); err != nil {
			return store.Detail{}, s.wrap(err)
		}
		switch kind {
		case 0:
			found = true
			row, err := jsonRow(v[0])
			if err != nil {
				return store.Detail{}, err
			}
			if out.Domain, err = scanDomain(row); err != nil {
				return store.Detail{}, s.wrap(err)
			}
			if err := assign(&out.UnusedProofs, v[1]); err != nil {
				return store.Detail{}, err
			}
		case 1:
			c := store.CheckRecord{Domain: name}
			var findings sql.NullString
			if err := (values(v[:])).Scan(&c.ID, tval{&c.At}, &c.Eligible, jlist{&c.MXHosts}, &findings, &c.Worker); err != nil {
				return store.Detail{}, err
			}
			if findings.Valid && findings.String != "" {
				c.Findings = json.RawMessage(findings.String)
			}
			out.Checks = append(out.Checks, c)
		case 2:
			d := store.Decision{Domain: name}
			var from, to string
			if err := (values(v[:5])).Scan(&d.ID, tval{&d.At}, &from, &to, &d.Reason); err != nil {
				return store.Detail{}, err
			}
			d.From, d.To = store.State(from), store.State(to)
			out.Decisions = append(out.Decisions, d)
		}
	}
	if err := rows.Err(); err != nil {
		return store.Detail{}, s.wrap(err)
	}
	if !found {
		return store.Detail{}, store.ErrNotFound
	}
	// The orders of Checks and Decisions: newest check first, decisions
	// as taken.
	slices.SortFunc(out.Checks, func(x, y store.CheckRecord) int {
		if c := y.At.Compare(x.At); c != 0 {
			return c
		}
		return cmp.Compare(y.ID, x.ID)
	})
	slices.SortFunc(out.Decisions, func(x, y store.Decision) int { return cmp.Compare(x.ID, y.ID) })
	return out, nil
}

// jsonRow reads the JSON array json_array() made of a row's columns
// into the values Rows.Scan would have given (integers as int64, text as
// string, NULL as nil).
func jsonRow(src any) (values, error) {
	var b []byte
	switch t := src.(type) {
	case string:
		b = []byte(t)
	case []byte:
		b = t
	default:
		return nil, fmt.Errorf("sqlstore: a domain row of type %T", src)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("sqlstore: a domain row: %w", err)
	}
	for i, x := range raw {
		if n, ok := x.(json.Number); ok {
			v, err := n.Int64()
			if err != nil {
				return nil, fmt.Errorf("sqlstore: a domain row's column %d: %w", i, err)
			}
			raw[i] = v
		}
	}
	return values(raw), nil
}

// values scans a row already read into values, as Rows.Scan would.
type values []any

func (v values) Scan(dest ...any) error {
	if len(dest) != len(v) {
		return fmt.Errorf("sqlstore: %d values scanned into %d destinations", len(v), len(dest))
	}
	for i, d := range dest {
		if err := assign(d, v[i]); err != nil {
			return fmt.Errorf("sqlstore: column %d: %w", i, err)
		}
	}
	return nil
}

// assign stores a driver value (int64, float64, bool, []byte, string,
// time.Time or nil) in dest, for the destination types the store scans
// into: a sql.Scanner, *string, *int, *int64 or *bool (from 0/1 too:
// SQLite's booleans).
func assign(dest, src any) error {
	if sc, ok := dest.(sql.Scanner); ok {
		return sc.Scan(src)
	}
	switch d := dest.(type) {
	case *string:
		switch v := src.(type) {
		case string:
			*d = v
			return nil
		case []byte:
			*d = string(v)
			return nil
		}
	case *int64:
		if v, ok := src.(int64); ok {
			*d = v
			return nil
		}
	case *int:
		if v, ok := src.(int64); ok {
			*d = int(v)
			return nil
		}
	case *bool:
		switch v := src.(type) {
		case bool:
			*d = v
			return nil
		case int64:
			*d = v != 0
			return nil
		}
	}
	return fmt.Errorf("cannot store %T in %T", src, dest)
}
