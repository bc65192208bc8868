package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

const proofCols = `id, domain, purpose, token_hash, dns_value, source, created_at, expires_at, used_at, used_by, superseded_at`

func scanProof(r scanner) (store.Proof, error) {
	var p store.Proof
	var purpose string
	err := r.Scan(&p.ID, &p.Domain, &purpose, &p.TokenHash, &p.DNSValue, &p.Source, tval{&p.CreatedAt}, tval{&p.Expires},
		tscan{&p.UsedAt}, &p.UsedBy, tscan{&p.SupersededAt})
	p.Purpose = store.Purpose(purpose)
	return p, err
}

// lockDomain reads a domain's row, locking it; ok is false when absent.
func (s *Store) lockDomain(ctx context.Context, tx *sql.Tx, name string) (store.Domain, bool, error) {
	d, err := scanDomain(tx.QueryRowContext(ctx, s.q(`SELECT `+domainCols+` FROM domains WHERE name = ? `+s.d.LockRows), name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Domain{}, false, nil
	}
	return d, err == nil, err
}

// supersede marks the open proofs of the domain (of purpose p, or of any
// purpose when p is empty) as superseded at `at`.
func (s *Store) supersede(ctx context.Context, tx *sql.Tx, domain string, p store.Purpose, at time.Time) error {
	query := `UPDATE proofs SET superseded_at = ? WHERE domain = ? AND used_at IS NULL AND superseded_at IS NULL`
	args := []any{s.t(at), domain}
	if p != "" {
		query += ` AND purpose = ?`
		args = append(args, string(p))
	}
	_, err := tx.ExecContext(ctx, s.q(query), args...)
	return err
}

// insertProof stores p and returns its ID (ErrAlreadyExists for a token
// hash stored before).
func (s *Store) insertProof(ctx context.Context, tx *sql.Tx, p store.Proof) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, s.q(`INSERT INTO proofs (domain, purpose, token_hash, dns_value, source, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token_hash) DO NOTHING RETURNING id`),
		p.Domain, string(p.Purpose), p.TokenHash, p.DNSValue, p.Source, s.t(p.CreatedAt), s.t(p.Expires)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, store.ErrAlreadyExists
	}
	return id, err
}

// Declare implements store.Store.
func (s *Store) Declare(ctx context.Context, dc store.Declaration) (store.Declared, error) {
	if err := store.CheckDeclaration(dc); err != nil {
		return store.Declared{}, err
	}
	var out store.Declared
	at := store.Time(dc.At)
	in := dc.Domain
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		out = store.Declared{}
		d, exists, err := s.lockDomain(ctx, tx, in.Name)
		if err != nil {
			return err
		}
		if !exists {
			res, err := tx.ExecContext(ctx, s.q(`INSERT INTO domains (name, state, contact, mx_patterns, want_enforce,
				follow_mtasts, source, created_at, updated_at, next_check) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
				ON CONFLICT (name) DO NOTHING`),
				in.Name, string(store.StatePending), in.Contact, jsonList(in.MXPatterns), in.WantEnforce, in.FollowMTASTS,
				in.Source, s.t(at), s.t(at), s.t(at))
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			if n == 0 { // another transaction inserted it first
				if d, exists, err = s.lockDomain(ctx, tx, in.Name); err != nil {
					return err
				} else if !exists {
					return store.ErrConflict
				}
			} else {
				d = store.Domain{Name: in.Name, State: store.StatePending}
				out.From = ""
				if dc.To != store.StatePending {
					if err := s.decide(ctx, tx, in.Name, store.StatePending, dc.To, dc.Reason, at); err != nil {
						return err
					}
				}
				out.To = dc.To
			}
		}
		if exists {
			if dc.To == store.StatePending && store.Active(d.State) {
				return store.ErrConflict
			}
			out.From, out.To = d.State, d.State
			contact := d.Contact
			if in.Contact != "" {
				contact = in.Contact
			}
			set := `contact = ?, mx_patterns = ?, want_enforce = ?, follow_mtasts = ?, source = ?, updated_at = ?`
			args := []any{contact, jsonList(in.MXPatterns), in.WantEnforce, in.FollowMTASTS, in.Source, s.t(at)}
			var supersede store.Purpose = "-"
			switch {
			case store.Active(d.State):
			case d.State == store.StatePending:
				supersede = store.PurposeAdd
				if dc.To != d.State {
					set += `, next_check = ?`
					args = append(args, s.t(at))
				}
			default: // removal_requested, removed: opened again
				supersede = ""
				set += `, next_check = ?, checks_passed = 0, passing_since = NULL, failing_since = NULL`
				args = append(args, s.t(at))
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE domains SET `+set+` WHERE name = ?`), append(args, in.Name)...); err != nil {
				return err
			}
			if supersede != "-" {
				if err := s.supersede(ctx, tx, in.Name, supersede, at); err != nil {
					return err
				}
				if dc.To != d.State {
					if err := s.decide(ctx, tx, in.Name, d.State, dc.To, dc.Reason, at); err != nil {
						return err
					}
					out.To = dc.To
				}
			}
		}
		if dc.Proof != nil {
			p := *dc.Proof
			p.Domain, p.Purpose = in.Name, store.PurposeAdd
			id, err := s.insertProof(ctx, tx, p)
			if err != nil {
				return err
			}
			out.ProofID = id
		}
		return nil
	})
	if err != nil {
		return store.Declared{}, s.wrap(err)
	}
	return out, nil
}

// AddProof implements store.Store.
func (s *Store) AddProof(ctx context.Context, p store.Proof) (int64, error) {
	if err := store.CheckProof(p); err != nil {
		return 0, err
	}
	var id int64
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		st, _, err := s.lockState(ctx, tx, p.Domain)
		if err != nil {
			return err
		}
		if st == store.StateRemoved {
			return store.ErrConflict
		}
		if err := s.supersede(ctx, tx, p.Domain, p.Purpose, p.CreatedAt); err != nil {
			return err
		}
		id, err = s.insertProof(ctx, tx, p)
		return err
	})
	return id, s.wrap(err)
}

// UseProof implements store.Store.
func (s *Store) UseProof(ctx context.Context, u store.ProofUse) (store.UsedProof, error) {
	if u.ID == 0 && u.TokenHash == "" {
		return store.UsedProof{}, store.ErrNotFound
	}
	at := store.Time(u.At)
	var out store.UsedProof
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		// The domain's row first, as every other write locks it, then
		// the proof's.
		cur, _, err := s.lockState(ctx, tx, u.Domain)
		if errors.Is(err, store.ErrNotFound) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		where, key := `id = ?`, any(u.ID)
		if u.ID == 0 {
			where, key = `token_hash = ?`, u.TokenHash
		}
		p, err := scanProof(tx.QueryRowContext(ctx, s.q(`SELECT `+proofCols+` FROM proofs WHERE `+where+` AND domain = ? `+s.d.LockRows), key, u.Domain))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		to, err := store.ProofOutcome(p, u, cur, at)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE proofs SET used_at = ?, used_by = ? WHERE id = ?`), s.t(at), u.UsedBy, p.ID); err != nil {
			return err
		}
		p.UsedAt, p.UsedBy = &at, u.UsedBy
		out = store.UsedProof{Proof: p, From: cur, To: to}
		if to == cur {
			return nil
		}
		if p.Purpose == store.PurposeRemove {
			if err := s.supersede(ctx, tx, u.Domain, store.PurposeAdd, at); err != nil {
				return err
			}
		}
		if to == store.StateValidating {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE domains SET next_check = ?, checks_passed = 0, passing_since = NULL,
				failing_since = NULL WHERE name = ?`), s.t(at), u.Domain); err != nil {
				return err
			}
		}
		return s.decide(ctx, tx, u.Domain, cur, to, u.Reason, at)
	})
	if err != nil {
		return store.UsedProof{}, s.wrap(err)
	}
	return out, nil
}

// ProofByToken implements store.Store.
func (s *Store) ProofByToken(ctx context.Context, tokenHash string) (store.Proof, error) {
	p, err := scanProof(s.db.QueryRowContext(ctx, s.q(`SELECT `+proofCols+` FROM proofs WHERE token_hash = ?`), tokenHash))
	if errors.Is(err, sql.ErrNoRows) || tokenHash == "" {
		return store.Proof{}, store.ErrNotFound
	}
	return p, s.wrap(err)
}

func (s *Store) queryProofs(ctx context.Context, query string, args ...any) ([]store.Proof, error) {
	rows, err := s.readQuery(ctx, query, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	defer rows.Close()
	out := []store.Proof{}
	for rows.Next() {
		p, err := scanProof(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, s.wrap(rows.Err())
}

// Proofs implements store.Store.
func (s *Store) Proofs(ctx context.Context, domain string) ([]store.Proof, error) {
	return s.queryProofs(ctx, `SELECT `+proofCols+` FROM proofs WHERE domain = ? ORDER BY id DESC`, domain)
}

// OpenProofs implements store.Store.
func (s *Store) OpenProofs(ctx context.Context, at time.Time, afterID int64, limit int) ([]store.Proof, error) {
	query := `SELECT ` + proofCols + ` FROM proofs WHERE used_at IS NULL AND superseded_at IS NULL AND id > ? AND expires_at > ? ORDER BY id`
	args := []any{afterID, s.t(at)}
	if limit > 0 {
		query += ` LIMIT ?`
		args = append(args, limit)
	}
	return s.queryProofs(ctx, query, args...)
}

// PruneProofs implements store.Store.
func (s *Store) PruneProofs(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, true, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM proofs WHERE expires_at < ?`), s.t(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, s.wrap(err)
}
