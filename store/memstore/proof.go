package memstore

import (
	"context"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

func copyProof(p *store.Proof) store.Proof {
	c := *p
	c.UsedAt = store.TimePtr(p.UsedAt)
	c.SupersededAt = store.TimePtr(p.SupersededAt)
	return c
}

// supersede marks the open proofs of the domain (of purpose p, or of any
// purpose when p is empty) as superseded at `at`.
func (s *Store) supersede(domain string, p store.Purpose, at time.Time) {
	for _, pr := range s.proofsOf[domain] {
		if (p == "" || pr.Purpose == p) && pr.UsedAt == nil && pr.SupersededAt == nil {
			t := at
			pr.SupersededAt = &t
		}
	}
}

// insertProof stores p (validated by the caller) and returns its ID.
func (s *Store) insertProof(p store.Proof) (int64, error) {
	if _, dup := s.byHash[p.TokenHash]; dup {
		return 0, store.ErrAlreadyExists
	}
	s.nextID++
	p.ID = s.nextID
	p.CreatedAt, p.Expires = store.Time(p.CreatedAt), store.Time(p.Expires)
	p.UsedAt, p.UsedBy, p.SupersededAt = nil, "", nil
	c := copyProof(&p)
	s.proofs = append(s.proofs, &c)
	s.byHash[c.TokenHash] = &c
	s.proofsOf[c.Domain] = append(s.proofsOf[c.Domain], &c)
	return p.ID, nil
}

// Declare implements store.Store.
func (s *Store) Declare(ctx context.Context, dc store.Declaration) (store.Declared, error) {
	if err := store.CheckDeclaration(dc); err != nil {
		return store.Declared{}, err
	}
	var out store.Declared
	err := one(ctx, s, dc, func(dc store.Declaration) error {
		at := store.Time(dc.At)
		in := dc.Domain
		d, exists := s.domains[in.Name]
		if exists && dc.To == store.StatePending && store.Active(d.State) {
			return store.ErrConflict
		}
		if dc.Proof != nil {
			if _, dup := s.byHash[dc.Proof.TokenHash]; dup {
				return store.ErrAlreadyExists
			}
		}
		if !exists {
			d = &store.Domain{Name: in.Name, State: store.StatePending, CreatedAt: at, MXPatterns: []string{}}
			s.domains[in.Name] = d
		}
		out.From = d.State
		if !exists {
			out.From = ""
		}
		if in.Contact != "" || !exists {
			d.Contact = in.Contact
		}
		d.MXPatterns = append([]string{}, in.MXPatterns...)
		d.WantEnforce, d.FollowMTASTS, d.Source = in.WantEnforce, in.FollowMTASTS, in.Source
		d.UpdatedAt = at
		switch {
		case store.Active(d.State):
			// Declared again by a proven door: the state is kept.
		case d.State == store.StatePending:
			s.supersede(d.Name, store.PurposeAdd, at)
			if !exists || dc.To != d.State {
				d.NextCheck = at
			}
			if dc.To != d.State {
				s.decide(d, dc.To, dc.Reason, at)
			}
		default: // removal_requested, removed: opened again
			s.supersede(d.Name, "", at)
			d.NextCheck, d.ChecksPassed, d.PassingSince, d.FailingSince = at, 0, nil, nil
			s.decide(d, dc.To, dc.Reason, at)
		}
		out.To = d.State
		if dc.Proof != nil {
			p := *dc.Proof
			p.Domain, p.Purpose = d.Name, store.PurposeAdd
			id, err := s.insertProof(p)
			if err != nil {
				return err
			}
			out.ProofID = id
		}
		return nil
	})
	if err != nil {
		return store.Declared{}, err
	}
	return out, nil
}

// AddProof implements store.Store.
func (s *Store) AddProof(ctx context.Context, p store.Proof) (int64, error) {
	if err := store.CheckProof(p); err != nil {
		return 0, err
	}
	var id int64
	err := s.withDomain(ctx, p.Domain, func(d *store.Domain) error {
		if d.State == store.StateRemoved {
			return store.ErrConflict
		}
		if _, dup := s.byHash[p.TokenHash]; dup {
			return store.ErrAlreadyExists
		}
		s.supersede(d.Name, p.Purpose, store.Time(p.CreatedAt))
		var err error
		id, err = s.insertProof(p)
		return err
	})
	return id, err
}

// UseProof implements store.Store.
func (s *Store) UseProof(ctx context.Context, u store.ProofUse) (store.UsedProof, error) {
	var out store.UsedProof
	err := one(ctx, s, u, func(u store.ProofUse) error {
		var p *store.Proof
		for _, pr := range s.proofsOf[u.Domain] {
			if u.ID != 0 && pr.ID == u.ID || u.ID == 0 && u.TokenHash != "" && pr.TokenHash == u.TokenHash {
				p = pr
				break
			}
		}
		if p == nil {
			return store.ErrNotFound
		}
		at := store.Time(u.At)
		d := s.domains[p.Domain]
		to, err := store.ProofOutcome(*p, u, d.State, at)
		if err != nil {
			return err
		}
		p.UsedAt, p.UsedBy = &at, u.UsedBy
		out.From, out.To = d.State, to
		if to != d.State {
			if p.Purpose == store.PurposeRemove {
				s.supersede(d.Name, store.PurposeAdd, at)
			}
			if to == store.StateValidating {
				d.NextCheck, d.ChecksPassed, d.PassingSince, d.FailingSince = at, 0, nil, nil
			}
			s.decide(d, to, u.Reason, at)
		}
		out.Proof = copyProof(p)
		return nil
	})
	return out, err
}

// ProofByToken implements store.Store.
func (s *Store) ProofByToken(ctx context.Context, tokenHash string) (store.Proof, error) {
	var out store.Proof
	err := one(ctx, s, tokenHash, func(h string) error {
		if pr, ok := s.byHash[h]; ok && h != "" {
			out = copyProof(pr)
			return nil
		}
		return store.ErrNotFound
	})
	return out, err
}

// Proofs implements store.Store.
func (s *Store) Proofs(ctx context.Context, domain string) ([]store.Proof, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []store.Proof{}
	ps := s.proofsOf[domain]
	for i := len(ps) - 1; i >= 0; i-- {
		out = append(out, copyProof(ps[i]))
	}
	return out, nil
}

// OpenProofs implements store.Store.
func (s *Store) OpenProofs(ctx context.Context, at time.Time, afterID int64, limit int) ([]store.Proof, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	at = store.Time(at)
	out := []store.Proof{}
	for _, pr := range s.proofs { // in ID order
		if pr.ID > afterID && pr.Open(at) {
			out = append(out, copyProof(pr))
			if limit > 0 && len(out) == limit {
				break
			}
		}
	}
	return out, nil
}

// PruneProofs implements store.Store.
func (s *Store) PruneProofs(ctx context.Context, before time.Time) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	before = store.Time(before)
	var n int64
	keep := s.proofs[:0]
	for _, p := range s.proofs {
		if p.Expires.Before(before) {
			n++
			delete(s.byHash, p.TokenHash)
			continue
		}
		keep = append(keep, p)
	}
	clear(s.proofs[len(keep):])
	s.proofs = keep
	if n > 0 {
		s.proofsOf = map[string][]*store.Proof{}
		for _, p := range s.proofs {
			s.proofsOf[p.Domain] = append(s.proofsOf[p.Domain], p)
		}
	}
	return n, nil
}
