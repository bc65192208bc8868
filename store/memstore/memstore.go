// Package memstore is an in-memory store.Store for tests and for trying the
// service without a database. It passes the same conformance suite
// (store/storetest) as the SQLite and PostgreSQL stores.
package memstore

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// Store is the in-memory store. The zero value is not usable; call New.
type Store struct {
	mu        sync.Mutex
	domains   map[string]*store.Domain
	checks    map[string][]store.CheckRecord // oldest first
	decisions map[string][]store.Decision    // oldest first
	lists     map[int64]store.ListRecord
	serial    int64
	optOut    map[string]bool
	proofs    []*store.Proof            // by ID
	byHash    map[string]*store.Proof   // by token hash
	proofsOf  map[string][]*store.Proof // by domain, by ID
	nextID    int64
	closed    bool
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		domains:   map[string]*store.Domain{},
		checks:    map[string][]store.CheckRecord{},
		decisions: map[string][]store.Decision{},
		lists:     map[int64]store.ListRecord{},
		optOut:    map[string]bool{},
		byHash:    map[string]*store.Proof{},
		proofsOf:  map[string][]*store.Proof{},
	}
}

func now() time.Time { return store.Time(time.Now()) }

func copyDomain(d *store.Domain) store.Domain {
	c := *d
	c.MXPatterns = append([]string{}, d.MXPatterns...)
	c.LastChecked = store.TimePtr(d.LastChecked)
	c.PassingSince = store.TimePtr(d.PassingSince)
	c.FailingSince = store.TimePtr(d.FailingSince)
	c.ClaimedUntil = store.TimePtr(d.ClaimedUntil)
	return c
}

func copyCheck(c store.CheckRecord) store.CheckRecord {
	c.MXHosts = append([]string{}, c.MXHosts...)
	if len(c.Findings) == 0 {
		c.Findings = nil
	} else {
		c.Findings = bytes.Clone(c.Findings)
	}
	return c
}

func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// each runs f on every item under one hold of the lock, as one batch, and
// returns f's result for each item in order; the error is the lock's.
func each[T any](ctx context.Context, s *Store, items []T, f func(T) error) ([]error, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	errs := make([]error, len(items))
	for i, it := range items {
		errs[i] = f(it)
	}
	return errs, nil
}

// one runs f on item under the lock: f's result, or the lock's error.
func one[T any](ctx context.Context, s *Store, item T, f func(T) error) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	return f(item)
}

// withDomain runs f on the named domain under the lock: f's result,
// store.ErrNotFound when there is no such domain, or the lock's error.
func (s *Store) withDomain(ctx context.Context, name string, f func(d *store.Domain) error) error {
	return one(ctx, s, name, func(name string) error {
		d, ok := s.domains[name]
		if !ok {
			return store.ErrNotFound
		}
		return f(d)
	})
}

// AddDomain implements store.Store.
func (s *Store) AddDomain(ctx context.Context, d store.Domain) error {
	return one(ctx, s, d, s.add)
}

// AddDomains implements store.Store.
func (s *Store) AddDomains(ctx context.Context, ds []store.Domain) ([]error, error) {
	return each(ctx, s, ds, s.add)
}

func (s *Store) add(d store.Domain) error {
	if !store.ValidName(d.Name) {
		return store.ErrInvalid
	}
	if d.State == "" {
		d.State = store.StatePending
	}
	if !d.State.Valid() {
		return store.ErrInvalid
	}
	if _, ok := s.domains[d.Name]; ok {
		return store.ErrAlreadyExists
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = now()
	}
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = d.CreatedAt
	}
	d.CreatedAt, d.UpdatedAt, d.NextCheck = store.Time(d.CreatedAt), store.Time(d.UpdatedAt), store.Time(d.NextCheck)
	d.ClaimedBy, d.ClaimedUntil = "", nil
	c := copyDomain(&d)
	s.domains[d.Name] = &c
	return nil
}

// GetDomain implements store.Store.
func (s *Store) GetDomain(ctx context.Context, name string) (store.Domain, error) {
	if err := s.lock(ctx); err != nil {
		return store.Domain{}, err
	}
	defer s.mu.Unlock()
	d, ok := s.domains[name]
	if !ok {
		return store.Domain{}, store.ErrNotFound
	}
	return copyDomain(d), nil
}

// ListDomains implements store.Store.
func (s *Store) ListDomains(ctx context.Context, f store.Filter) ([]store.Domain, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.domains))
	for n, d := range s.domains {
		if n <= f.After && f.After != "" {
			continue
		}
		if len(f.States) > 0 && !slices.Contains(f.States, d.State) {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if f.Limit > 0 && len(names) > f.Limit {
		names = names[:f.Limit]
	}
	out := make([]store.Domain, 0, len(names))
	for _, n := range names {
		out = append(out, copyDomain(s.domains[n]))
	}
	return out, nil
}

// CountByState implements store.Store.
func (s *Store) CountByState(ctx context.Context) (map[store.State]int, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	m := map[store.State]int{}
	for _, d := range s.domains {
		m[d.State]++
	}
	return m, nil
}

// UpdateDomain implements store.Store.
func (s *Store) UpdateDomain(ctx context.Context, d store.Domain) error {
	return s.withDomain(ctx, d.Name, func(cur *store.Domain) error {
		if d.UpdatedAt.IsZero() {
			d.UpdatedAt = now()
		}
		cur.Contact = d.Contact
		cur.MXPatterns = append([]string{}, d.MXPatterns...)
		cur.WantEnforce = d.WantEnforce
		cur.FollowMTASTS = d.FollowMTASTS
		cur.Source = d.Source
		cur.NextCheck = store.Time(d.NextCheck)
		cur.ChecksPassed = d.ChecksPassed
		cur.PassingSince = store.TimePtr(d.PassingSince)
		cur.FailingSince = store.TimePtr(d.FailingSince)
		cur.UpdatedAt = store.Time(d.UpdatedAt)
		return nil
	})
}

func (s *Store) decide(d *store.Domain, to store.State, reason string, at time.Time) {
	s.nextID++
	s.decisions[d.Name] = append(s.decisions[d.Name], store.Decision{
		ID: s.nextID, Domain: d.Name, At: at, From: d.State, To: to, Reason: reason,
	})
	d.State = to
	d.UpdatedAt = at
}

// Transition implements store.Store.
func (s *Store) Transition(ctx context.Context, name string, from, to store.State, reason string, at time.Time) error {
	if !from.Valid() || !to.Valid() {
		return store.ErrInvalid
	}
	return s.withDomain(ctx, name, func(d *store.Domain) error {
		if d.State != from {
			return store.ErrConflict
		}
		s.decide(d, to, reason, store.Time(at))
		return nil
	})
}

// RequestRemoval implements store.Store.
func (s *Store) RequestRemoval(ctx context.Context, name, reason string, at time.Time) error {
	return s.withDomain(ctx, name, func(d *store.Domain) error {
		switch d.State {
		case store.StateRemoved:
			return store.ErrConflict
		case store.StateRemovalRequested:
			return nil
		}
		s.supersede(d.Name, store.PurposeAdd, store.Time(at))
		s.decide(d, store.StateRemovalRequested, reason, store.Time(at))
		return nil
	})
}

// RecordCheck implements store.Store.
func (s *Store) RecordCheck(ctx context.Context, u store.CheckUpdate) error {
	return one(ctx, s, u, s.apply)
}

// RecordChecks implements store.Store.
func (s *Store) RecordChecks(ctx context.Context, us []store.CheckUpdate) ([]error, error) {
	return each(ctx, s, us, s.apply)
}

func (s *Store) apply(u store.CheckUpdate) error {
	if u.Transition != nil && (!u.Transition.From.Valid() || !u.Transition.To.Valid()) {
		return store.ErrInvalid
	}
	d, ok := s.domains[u.Check.Domain]
	if !ok {
		return store.ErrNotFound
	}
	if u.Check.Worker != "" && d.ClaimedBy != u.Check.Worker {
		return store.ErrConflict
	}
	if u.Transition != nil && d.State != u.Transition.From {
		return store.ErrConflict
	}
	if len(u.Check.Findings) > 0 && !json.Valid(u.Check.Findings) {
		return store.ErrInvalid
	}
	at := store.Time(u.Check.At)
	c := copyCheck(u.Check)
	c.At = at
	s.nextID++
	c.ID = s.nextID
	s.checks[d.Name] = append(s.checks[d.Name], c)
	d.LastChecked = &at
	d.NextCheck = store.Time(u.NextCheck)
	d.ChecksPassed = u.ChecksPassed
	d.PassingSince = store.TimePtr(u.PassingSince)
	d.FailingSince = store.TimePtr(u.FailingSince)
	if u.MXPatterns != nil {
		d.MXPatterns = append([]string{}, u.MXPatterns...)
	}
	d.UpdatedAt = at
	d.ClaimedBy, d.ClaimedUntil = "", nil
	if u.Transition != nil {
		s.decide(d, u.Transition.To, u.Transition.Reason, at)
	}
	return nil
}

// Checks implements store.Store.
func (s *Store) Checks(ctx context.Context, domain string, since time.Time, limit int) ([]store.CheckRecord, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []store.CheckRecord{}
	since = store.Time(since)
	cs := s.checks[domain]
	for i := len(cs) - 1; i >= 0; i-- {
		if cs[i].At.Before(since) {
			continue
		}
		out = append(out, copyCheck(cs[i]))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.After(out[j].At) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// DomainDetail implements store.Store.
func (s *Store) DomainDetail(ctx context.Context, name string, checkLimit int) (store.Detail, error) {
	if err := s.lock(ctx); err != nil {
		return store.Detail{}, err
	}
	defer s.mu.Unlock()
	d, ok := s.domains[name]
	if !ok {
		return store.Detail{}, store.ErrNotFound
	}
	out := store.Detail{Domain: copyDomain(d), Checks: []store.CheckRecord{}, Decisions: append([]store.Decision{}, s.decisions[name]...)}
	cs := s.checks[name]
	for i := len(cs) - 1; i >= 0; i-- {
		out.Checks = append(out.Checks, copyCheck(cs[i]))
	}
	sort.SliceStable(out.Checks, func(i, j int) bool { return out.Checks[i].At.After(out.Checks[j].At) })
	if checkLimit > 0 && len(out.Checks) > checkLimit {
		out.Checks = out.Checks[:checkLimit]
	}
	for _, p := range s.proofsOf[name] {
		if p.UsedAt == nil && p.SupersededAt == nil {
			out.UnusedProofs = true
		}
	}
	return out, nil
}

// PruneChecks implements store.Store.
func (s *Store) PruneChecks(ctx context.Context, before time.Time) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	before = store.Time(before)
	var n int64
	for name, cs := range s.checks {
		kept := cs[:0]
		for _, c := range cs {
			if c.At.Before(before) {
				n++
				continue
			}
			kept = append(kept, c)
		}
		s.checks[name] = kept
	}
	return n, nil
}

// Decisions implements store.Store.
func (s *Store) Decisions(ctx context.Context, domain string) ([]store.Decision, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return append([]store.Decision{}, s.decisions[domain]...), nil
}

// ClaimDue implements store.Store.
func (s *Store) ClaimDue(ctx context.Context, worker string, now time.Time, limit int, lease time.Duration) ([]store.Domain, error) {
	if worker == "" || limit <= 0 || lease <= 0 {
		return nil, store.ErrInvalid
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now = store.Time(now)
	// Keep the limit earliest due domains in a max-heap: one pass over
	// the domains, O(n log limit).
	h := &dueHeap{}
	for _, d := range s.domains {
		if d.State == store.StateRemoved || d.NextCheck.After(now) {
			continue
		}
		if d.ClaimedUntil != nil && d.ClaimedUntil.After(now) {
			continue
		}
		if h.Len() < limit {
			heap.Push(h, d)
		} else if earlier(d, (*h)[0]) {
			(*h)[0] = d
			heap.Fix(h, 0)
		}
	}
	due := []*store.Domain(*h)
	sort.Slice(due, func(i, j int) bool { return earlier(due[i], due[j]) })
	until := store.Time(now.Add(lease))
	out := make([]store.Domain, 0, len(due))
	for _, d := range due {
		d.ClaimedBy, d.ClaimedUntil = worker, &until
		out = append(out, copyDomain(d))
	}
	return out, nil
}

// NextDue implements store.Store.
func (s *Store) NextDue(ctx context.Context) (time.Time, error) {
	if err := s.lock(ctx); err != nil {
		return time.Time{}, err
	}
	defer s.mu.Unlock()
	var next time.Time
	for _, d := range s.domains {
		if d.State == store.StateRemoved {
			continue
		}
		due := d.NextCheck
		if d.ClaimedUntil != nil && d.ClaimedUntil.After(due) {
			due = *d.ClaimedUntil
		}
		if next.IsZero() || due.Before(next) {
			next = due
		}
	}
	if next.IsZero() {
		return time.Time{}, store.ErrNotFound
	}
	return next, nil
}

// Release implements store.Store.
func (s *Store) Release(ctx context.Context, worker string, names []string, next time.Time) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	for _, n := range names {
		d, ok := s.domains[n]
		if !ok || d.ClaimedBy != worker {
			continue
		}
		d.ClaimedBy, d.ClaimedUntil = "", nil
		if !next.IsZero() {
			d.NextCheck = store.Time(next)
		}
	}
	return nil
}

// NextSerial implements store.Store.
func (s *Store) NextSerial(ctx context.Context) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	s.serial++
	return s.serial, nil
}

// SaveList implements store.Store.
func (s *Store) SaveList(ctx context.Context, l store.ListRecord) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if _, ok := s.lists[l.Serial]; ok {
		return store.ErrAlreadyExists
	}
	l.Timestamp, l.Expires = store.Time(l.Timestamp), store.Time(l.Expires)
	s.lists[l.Serial] = l
	if l.Serial > s.serial {
		s.serial = l.Serial
	}
	return nil
}

// LatestList implements store.Store.
func (s *Store) LatestList(ctx context.Context) (store.ListRecord, error) {
	if err := s.lock(ctx); err != nil {
		return store.ListRecord{}, err
	}
	defer s.mu.Unlock()
	var best store.ListRecord
	found := false
	for k, l := range s.lists {
		if !found || k > best.Serial {
			best, found = l, true
		}
	}
	if !found {
		return store.ListRecord{}, store.ErrNotFound
	}
	return best, nil
}

// AddOptOut implements store.Store.
func (s *Store) AddOptOut(ctx context.Context, domain, reason string, at time.Time) error {
	if domain == "" {
		return store.ErrInvalid
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.optOut[domain] = true
	return nil
}

// RemoveOptOut implements store.Store.
func (s *Store) RemoveOptOut(ctx context.Context, domain string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	delete(s.optOut, domain)
	return nil
}

// IsOptedOut implements store.Store.
func (s *Store) IsOptedOut(ctx context.Context, domain string) (bool, error) {
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	return s.optOut[domain], nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// earlier orders domains by due time, then name.
func earlier(a, b *store.Domain) bool {
	if !a.NextCheck.Equal(b.NextCheck) {
		return a.NextCheck.Before(b.NextCheck)
	}
	return a.Name < b.Name
}

// dueHeap is a max-heap on earlier: its root is the latest due domain.
type dueHeap []*store.Domain

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return earlier(h[j], h[i]) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(*store.Domain)) }
func (h *dueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
