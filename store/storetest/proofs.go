package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// proof returns a new proof of purpose p for domain, made at made and
// standing for 72 hours; key makes its token hash and DNS value unique.
func proof(domain string, p store.Purpose, key string, made time.Time) store.Proof {
	return store.Proof{Domain: domain, Purpose: p, TokenHash: "hash-" + key, DNSValue: "dns-" + key,
		Source: "web", CreatedAt: made, Expires: made.Add(72 * time.Hour)}
}

func declarePending(t *testing.T, s store.Store, name, key string, when time.Time) store.Declared {
	t.Helper()
	p := proof(name, store.PurposeAdd, key, when)
	got, err := s.Declare(context.Background(), store.Declaration{
		Domain: store.Domain{Name: name, Contact: "ops@" + name, MXPatterns: []string{"mx." + name}, Source: "web"},
		To:     store.StatePending, Proof: &p, Reason: "submission.reopened: test", At: when,
	})
	must(t, err)
	return got
}

func proofs(t *testing.T, s store.Store, name string) []store.Proof {
	t.Helper()
	ps, err := s.Proofs(context.Background(), name)
	must(t, err)
	return ps
}

func decisions(t *testing.T, s store.Store, name string) []store.Decision {
	t.Helper()
	ds, err := s.Decisions(context.Background(), name)
	must(t, err)
	return ds
}

func testDeclareNew(t *testing.T, s store.Store) {
	ctx := context.Background()
	got := declarePending(t, s, "new.example", "a", T0)
	if got.From != "" || got.To != store.StatePending || got.ProofID == 0 {
		t.Errorf("Declared = %+v, want from \"\" to pending with a proof", got)
	}
	d, err := s.GetDomain(ctx, "new.example")
	must(t, err)
	if d.State != store.StatePending || d.Source != "web" || d.Contact != "ops@new.example" || len(d.MXPatterns) != 1 ||
		!d.NextCheck.Equal(store.Time(T0)) || !d.CreatedAt.Equal(store.Time(T0)) {
		t.Errorf("domain = %+v", d)
	}
	if ds := decisions(t, s, "new.example"); len(ds) != 0 {
		t.Errorf("a new pending domain has decisions: %+v", ds)
	}
	ps := proofs(t, s, "new.example")
	want := proof("new.example", store.PurposeAdd, "a", T0)
	want.ID = got.ProofID
	want.CreatedAt, want.Expires = store.Time(want.CreatedAt), store.Time(want.Expires)
	same(t, "proofs", ps, []store.Proof{want})
	p, err := s.ProofByToken(ctx, "hash-a")
	must(t, err)
	same(t, "ProofByToken", p, want)
	_, err = s.ProofByToken(ctx, "hash-none")
	isErr(t, "ProofByToken(unknown)", err, store.ErrNotFound)

	// Proven elsewhere: straight to validating, with its decision.
	got, err = s.Declare(ctx, store.Declaration{Domain: store.Domain{Name: "op.example", MXPatterns: []string{"mx.op.example"}, Source: "operator"},
		To: store.StateValidating, Reason: "admission.added: test", At: at(time.Hour)})
	must(t, err)
	if got.From != "" || got.To != store.StateValidating || got.ProofID != 0 {
		t.Errorf("Declared = %+v, want from \"\" to validating", got)
	}
	ds := decisions(t, s, "op.example")
	if len(ds) != 1 || ds[0].From != store.StatePending || ds[0].To != store.StateValidating || ds[0].Reason != "admission.added: test" {
		t.Errorf("decisions = %+v, want pending → validating", ds)
	}
	if st := state(t, s, "op.example"); st != store.StateValidating {
		t.Errorf("state = %s, want validating", st)
	}
}

func testDeclarePending(t *testing.T, s store.Store) {
	ctx := context.Background()
	first := declarePending(t, s, "p.example", "1", T0)
	p2 := proof("p.example", store.PurposeAdd, "2", at(time.Hour))
	got, err := s.Declare(ctx, store.Declaration{
		Domain: store.Domain{Name: "p.example", MXPatterns: []string{"mx2.p.example"}, WantEnforce: true, Source: "https://github.com/o/r/pull/9"},
		To:     store.StatePending, Proof: &p2, At: at(time.Hour)})
	must(t, err)
	if got.From != store.StatePending || got.To != store.StatePending || got.ProofID <= first.ProofID {
		t.Errorf("Declared = %+v", got)
	}
	d, err := s.GetDomain(ctx, "p.example")
	must(t, err)
	if d.Contact != "ops@p.example" {
		t.Errorf("contact = %q, want the first one kept (the second declared none)", d.Contact)
	}
	if !d.WantEnforce || d.Source != "https://github.com/o/r/pull/9" || len(d.MXPatterns) != 1 || d.MXPatterns[0] != "mx2.p.example" {
		t.Errorf("declared fields not replaced: %+v", d)
	}
	ps := proofs(t, s, "p.example")
	if len(ps) != 2 || ps[0].ID != got.ProofID || !ps[0].Open(at(time.Hour)) ||
		ps[1].SupersededAt == nil || !ps[1].SupersededAt.Equal(store.Time(at(time.Hour))) {
		t.Errorf("proofs = %+v, want the new one open and the first superseded", ps)
	}

	// Proven elsewhere while pending: validating, and the open add proof
	// superseded.
	got, err = s.Declare(ctx, store.Declaration{Domain: store.Domain{Name: "p.example", MXPatterns: []string{"mx2.p.example"}, Source: "operator"},
		To: store.StateValidating, Reason: "admission.added: test", At: at(2 * time.Hour)})
	must(t, err)
	if got.From != store.StatePending || got.To != store.StateValidating {
		t.Errorf("Declared = %+v", got)
	}
	for _, p := range proofs(t, s, "p.example") {
		if p.Open(at(2 * time.Hour)) {
			t.Errorf("proof %d still open after an admission by an operator", p.ID)
		}
	}
	d, err = s.GetDomain(ctx, "p.example")
	must(t, err)
	if !d.NextCheck.Equal(store.Time(at(2 * time.Hour))) {
		t.Errorf("NextCheck = %v, want due at once", d.NextCheck)
	}
}

func testDeclareReopen(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, st := range []store.State{store.StateRemoved, store.StateRemovalRequested} {
		name := string(st) + ".example"
		must(t, s.AddDomain(ctx, store.Domain{Name: name, State: st, ChecksPassed: 9, PassingSince: ptr(T0), FailingSince: ptr(T0),
			Contact: "old@" + name, CreatedAt: T0, NextCheck: at(100 * time.Hour)}))
		if st == store.StateRemovalRequested {
			_, err := s.AddProof(ctx, proof(name, store.PurposeRemove, "rm-"+name, T0))
			must(t, err)
		}
		got := declarePending(t, s, name, "re-"+name, at(time.Hour))
		if got.From != st || got.To != store.StatePending {
			t.Errorf("%s: Declared = %+v", st, got)
		}
		d, err := s.GetDomain(ctx, name)
		must(t, err)
		if d.State != store.StatePending || d.ChecksPassed != 0 || d.PassingSince != nil || d.FailingSince != nil ||
			!d.NextCheck.Equal(store.Time(at(time.Hour))) || d.Contact != "ops@"+name {
			t.Errorf("%s: reopened domain = %+v", st, d)
		}
		ds := decisions(t, s, name)
		if len(ds) != 1 || ds[0].From != st || ds[0].To != store.StatePending {
			t.Errorf("%s: decisions = %+v", st, ds)
		}
		open := 0
		for _, p := range proofs(t, s, name) {
			if p.Open(at(time.Hour)) {
				open++
				if p.Purpose != store.PurposeAdd {
					t.Errorf("%s: a %s proof is still open", st, p.Purpose)
				}
			}
		}
		if open != 1 {
			t.Errorf("%s: %d open proofs, want 1", st, open)
		}
	}
}

func testDeclareActive(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, st := range []store.State{store.StateValidating, store.StateTesting, store.StateEnforce, store.StateDemoted} {
		name := string(st) + ".example"
		must(t, s.AddDomain(ctx, store.Domain{Name: name, State: st, ChecksPassed: 5, Contact: "old@" + name,
			MXPatterns: []string{"old." + name}, CreatedAt: T0, NextCheck: at(time.Hour)}))
		before, err := s.GetDomain(ctx, name)
		must(t, err)
		p := proof(name, store.PurposeAdd, "x-"+name, T0)
		_, err = s.Declare(ctx, store.Declaration{Domain: store.Domain{Name: name, MXPatterns: []string{"new." + name}},
			To: store.StatePending, Proof: &p, At: T0})
		isErr(t, string(st)+": Declare(pending)", err, store.ErrConflict)
		after, err := s.GetDomain(ctx, name)
		must(t, err)
		same(t, string(st)+": domain after a refused declaration", after, before)
		if ps := proofs(t, s, name); len(ps) != 0 {
			t.Errorf("%s: a refused declaration stored a proof: %+v", st, ps)
		}

		got, err := s.Declare(ctx, store.Declaration{Domain: store.Domain{Name: name, MXPatterns: []string{"new." + name}, Source: "operator"},
			To: store.StateValidating, Reason: "admission.added: again", At: at(time.Minute)})
		must(t, err)
		if got.From != st || got.To != st {
			t.Errorf("%s: Declared = %+v, want the state kept", st, got)
		}
		d, err := s.GetDomain(ctx, name)
		must(t, err)
		if d.State != st || d.ChecksPassed != 5 || d.Contact != "old@"+name || d.MXPatterns[0] != "new."+name || d.Source != "operator" ||
			!d.NextCheck.Equal(store.Time(at(time.Hour))) {
			t.Errorf("%s: declared again: %+v", st, d)
		}
		if ds := decisions(t, s, name); len(ds) != 0 {
			t.Errorf("%s: declaring patterns again recorded decisions: %+v", st, ds)
		}
	}
}

func testDeclareInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	p := proof("i.example", store.PurposeAdd, "i", T0)
	for _, dc := range []store.Declaration{
		{Domain: store.Domain{Name: "Bad.Example"}, To: store.StatePending, Proof: &p, At: T0},
		{Domain: store.Domain{Name: "i.example"}, To: store.StateTesting, At: T0},
		{Domain: store.Domain{Name: "i.example"}, To: store.StatePending, At: T0},
		{Domain: store.Domain{Name: "i.example"}, To: store.StateValidating, Proof: &p, At: T0},
		{Domain: store.Domain{Name: "i.example"}, To: store.StatePending, Proof: &store.Proof{Expires: T0}, At: T0},
	} {
		_, err := s.Declare(ctx, dc)
		isErr(t, fmt.Sprintf("Declare(%+v)", dc), err, store.ErrInvalid)
	}
	_, err := s.GetDomain(ctx, "i.example")
	isErr(t, "GetDomain after refused declarations", err, store.ErrNotFound)
}

// testDeclareConcurrent: submissions of one new domain at once (two doors,
// or a double click) make one domain with one open proof.
func testDeclareConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			p := proof("c.example", store.PurposeAdd, fmt.Sprint(i), T0)
			_, errs[i] = s.Declare(ctx, store.Declaration{Domain: store.Domain{Name: "c.example", MXPatterns: []string{"mx.c.example"}},
				To: store.StatePending, Proof: &p, At: T0})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Declare %d: %v", i, err)
		}
	}
	ds, err := s.ListDomains(ctx, store.Filter{})
	must(t, err)
	if len(ds) != 1 || ds[0].State != store.StatePending {
		t.Errorf("domains = %+v, want one pending", ds)
	}
	ps := proofs(t, s, "c.example")
	open := 0
	for _, p := range ps {
		if p.Open(T0) {
			open++
		}
	}
	if len(ps) != n || open != 1 {
		t.Errorf("%d proofs, %d open; want %d and 1", len(ps), open, n)
	}
}

func testAddProof(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.AddProof(ctx, proof("missing.example", store.PurposeRemove, "m", T0))
	isErr(t, "AddProof(missing)", err, store.ErrNotFound)
	add(t, s, "gone.example", store.StateRemoved, T0)
	_, err = s.AddProof(ctx, proof("gone.example", store.PurposeRemove, "g", T0))
	isErr(t, "AddProof(removed)", err, store.ErrConflict)
	_, err = s.AddProof(ctx, store.Proof{Domain: "gone.example", Purpose: "other", TokenHash: "h", DNSValue: "v", Expires: T0})
	isErr(t, "AddProof(bad purpose)", err, store.ErrInvalid)

	declarePending(t, s, "a.example", "add", T0)
	id1, err := s.AddProof(ctx, proof("a.example", store.PurposeRemove, "rm1", at(time.Minute)))
	must(t, err)
	id2, err := s.AddProof(ctx, proof("a.example", store.PurposeRemove, "rm2", at(2*time.Minute)))
	must(t, err)
	if id2 <= id1 {
		t.Errorf("IDs %d then %d, want rising", id1, id2)
	}
	_, err = s.AddProof(ctx, proof("a.example", store.PurposeRemove, "rm2", at(3*time.Minute)))
	isErr(t, "AddProof(same token hash)", err, store.ErrAlreadyExists)
	openBy := map[string]bool{}
	for _, p := range proofs(t, s, "a.example") {
		openBy[p.TokenHash] = p.Open(at(3 * time.Minute))
	}
	if !openBy["hash-add"] || openBy["hash-rm1"] || !openBy["hash-rm2"] {
		t.Errorf("open proofs %v: want the add proof and the newer remove proof open", openBy)
	}
}

func testUseProofAdd(t *testing.T, s store.Store) {
	ctx := context.Background()
	dc := declarePending(t, s, "u.example", "u", T0)
	must(t, s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "u.example", At: at(time.Minute)},
		NextCheck: at(50 * time.Hour), ChecksPassed: 3, PassingSince: ptr(T0)}))
	used, err := s.UseProof(ctx, store.ProofUse{Domain: "u.example", TokenHash: "hash-u", UsedBy: "mail", Reason: "ownership.mail: test", At: at(time.Hour)})
	must(t, err)
	if used.From != store.StatePending || used.To != store.StateValidating {
		t.Errorf("UseProof moved %s → %s, want pending → validating", used.From, used.To)
	}
	if p := used.Proof; p.ID != dc.ProofID || p.UsedAt == nil || !p.UsedAt.Equal(store.Time(at(time.Hour))) || p.UsedBy != "mail" {
		t.Errorf("used proof = %+v", p)
	}
	d, err := s.GetDomain(ctx, "u.example")
	must(t, err)
	if d.State != store.StateValidating || d.ChecksPassed != 0 || d.PassingSince != nil || !d.NextCheck.Equal(store.Time(at(time.Hour))) {
		t.Errorf("domain after its proof = %+v, want validating, counters reset, due at once", d)
	}
	ds := decisions(t, s, "u.example")
	if len(ds) != 1 || ds[0].From != store.StatePending || ds[0].To != store.StateValidating || ds[0].Reason != "ownership.mail: test" {
		t.Errorf("decisions = %+v", ds)
	}
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "u.example", TokenHash: "hash-u", UsedBy: "mail", At: at(time.Hour)})
	isErr(t, "UseProof(again)", err, store.ErrProofUsed)

	// By ID (the DNS form).
	declarePending(t, s, "v.example", "v", T0)
	ps := proofs(t, s, "v.example")
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "u.example", ID: ps[0].ID, UsedBy: "dns", At: T0})
	isErr(t, "UseProof(another domain's ID)", err, store.ErrNotFound)
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "v.example", ID: ps[0].ID, UsedBy: "dns", Reason: "ownership.dns: test", At: at(72*time.Hour - time.Microsecond)})
	must(t, err)
	if st := state(t, s, "v.example"); st != store.StateValidating {
		t.Errorf("state = %s, want validating", st)
	}
}

// testUseProofRefused: each refusal writes nothing.
func testUseProofRefused(t *testing.T, s store.Store) {
	ctx := context.Background()
	declarePending(t, s, "r.example", "old", T0)
	declarePending(t, s, "r.example", "new", at(time.Minute))
	declarePending(t, s, "x.example", "x", T0)
	before := proofs(t, s, "r.example")
	for _, c := range []struct {
		name string
		u    store.ProofUse
		want error
	}{
		{"unknown token", store.ProofUse{Domain: "r.example", TokenHash: "hash-none", At: T0}, store.ErrNotFound},
		{"empty token", store.ProofUse{Domain: "r.example", At: T0}, store.ErrNotFound},
		{"another domain's token", store.ProofUse{Domain: "r.example", TokenHash: "hash-x", At: T0}, store.ErrNotFound},
		{"unknown domain", store.ProofUse{Domain: "none.example", TokenHash: "hash-x", At: T0}, store.ErrNotFound},
		{"superseded", store.ProofUse{Domain: "r.example", TokenHash: "hash-old", At: at(time.Hour)}, store.ErrProofSuperseded},
		{"expired", store.ProofUse{Domain: "r.example", TokenHash: "hash-new", At: at(time.Minute + 72*time.Hour)}, store.ErrProofExpired},
	} {
		_, err := s.UseProof(ctx, c.u)
		isErr(t, c.name, err, c.want)
	}
	same(t, "proofs after refusals", proofs(t, s, "r.example"), before)
	if st := state(t, s, "r.example"); st != store.StatePending {
		t.Errorf("state = %s, want pending", st)
	}

	// The domain left pending by another way: the add proof no longer
	// applies, and stays unused.
	must(t, s.Transition(ctx, "x.example", store.StatePending, store.StateRemovalRequested, "removal.requested: test", T0))
	_, err := s.UseProof(ctx, store.ProofUse{Domain: "x.example", TokenHash: "hash-x", At: at(time.Minute)})
	isErr(t, "UseProof(not pending)", err, store.ErrConflict)
	if p, err := s.ProofByToken(ctx, "hash-x"); err != nil || p.UsedAt != nil {
		t.Errorf("refused proof: %+v, %v; want unused", p, err)
	}
}

func testUseProofRemove(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "l.example", store.StateTesting, T0)
	_, err := s.AddProof(ctx, proof("l.example", store.PurposeRemove, "l", T0))
	must(t, err)
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "l.example", TokenHash: "hash-l", Withdraw: true, At: T0})
	isErr(t, "UseProof(remove, withdraw)", err, store.ErrInvalid)
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "l.example", TokenHash: "hash-l", UsedBy: "dns", Reason: "removal.dns: test", At: at(time.Hour)})
	must(t, err)
	ds := decisions(t, s, "l.example")
	if len(ds) != 1 || ds[0].From != store.StateTesting || ds[0].To != store.StateRemovalRequested || ds[0].Reason != "removal.dns: test" {
		t.Errorf("decisions = %+v", ds)
	}
	// Already requested: the proof is used, nothing else happens.
	_, err = s.AddProof(ctx, proof("l.example", store.PurposeRemove, "l2", at(time.Hour)))
	must(t, err)
	used, err := s.UseProof(ctx, store.ProofUse{Domain: "l.example", TokenHash: "hash-l2", UsedBy: "mail", At: at(2 * time.Hour)})
	must(t, err)
	if used.From != store.StateRemovalRequested || used.To != store.StateRemovalRequested || used.Proof.UsedAt == nil {
		t.Errorf("UseProof = %+v, want the state kept and the proof used", used)
	}
	if ds := decisions(t, s, "l.example"); len(ds) != 1 {
		t.Errorf("a second removal proof recorded a decision: %+v", ds)
	}

	// A pending domain asked to leave: its open add proof is superseded.
	declarePending(t, s, "pr.example", "add", T0)
	_, err = s.AddProof(ctx, proof("pr.example", store.PurposeRemove, "rm", T0))
	must(t, err)
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "pr.example", TokenHash: "hash-rm", UsedBy: "mail", At: at(time.Minute)})
	must(t, err)
	if p, err := s.ProofByToken(ctx, "hash-add"); err != nil || p.SupersededAt == nil {
		t.Errorf("add proof after removal = %+v, %v; want superseded", p, err)
	}

	// Removed meanwhile: refused, nothing written.
	_, err = s.AddProof(ctx, proof("pr.example", store.PurposeRemove, "rm3", at(time.Minute)))
	must(t, err)
	must(t, s.Transition(ctx, "pr.example", store.StateRemovalRequested, store.StateRemoved, "removal.done: test", at(time.Minute)))
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "pr.example", TokenHash: "hash-rm3", At: at(2 * time.Minute)})
	isErr(t, "UseProof(removed)", err, store.ErrConflict)
}

func testUseProofWithdraw(t *testing.T, s store.Store) {
	ctx := context.Background()
	declarePending(t, s, "w.example", "w", T0)
	_, err := s.UseProof(ctx, store.ProofUse{Domain: "w.example", TokenHash: "hash-w", UsedBy: "mail", Withdraw: true,
		Reason: "submission.withdrawn: test", At: at(time.Hour)})
	must(t, err)
	ds := decisions(t, s, "w.example")
	if len(ds) != 1 || ds[0].From != store.StatePending || ds[0].To != store.StateRemoved || ds[0].Reason != "submission.withdrawn: test" {
		t.Errorf("decisions = %+v", ds)
	}
}

// testUseProofConcurrent: one token used at once from several requests
// proves once.
func testUseProofConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	declarePending(t, s, "cc.example", "cc", T0)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.UseProof(ctx, store.ProofUse{Domain: "cc.example", TokenHash: "hash-cc", UsedBy: "mail", At: at(time.Minute)})
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrProofUsed):
			t.Errorf("UseProof: %v, want nil or ErrProofUsed", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d uses succeeded, want 1", ok)
	}
	if ds := decisions(t, s, "cc.example"); len(ds) != 1 {
		t.Errorf("decisions = %+v, want one", ds)
	}
}

func testOpenProofs(t *testing.T, s store.Store) {
	ctx := context.Background()
	declarePending(t, s, "o1.example", "1", T0)
	declarePending(t, s, "o2.example", "2old", T0)
	declarePending(t, s, "o2.example", "2", at(time.Hour)) // supersedes 2old
	declarePending(t, s, "o3.example", "3", at(-72*time.Hour))
	declarePending(t, s, "o4.example", "4", T0)
	_, err := s.UseProof(ctx, store.ProofUse{Domain: "o4.example", TokenHash: "hash-4", At: T0})
	must(t, err)
	declarePending(t, s, "o5.example", "5", T0)

	hashes := func(ps []store.Proof) []string {
		out := []string{}
		for _, p := range ps {
			out = append(out, p.TokenHash)
		}
		return out
	}
	all, err := s.OpenProofs(ctx, at(time.Hour), 0, 0)
	must(t, err)
	same(t, "open proofs", hashes(all), []string{"hash-1", "hash-2", "hash-5"})
	page, err := s.OpenProofs(ctx, at(time.Hour), 0, 2)
	must(t, err)
	same(t, "first page", hashes(page), []string{"hash-1", "hash-2"})
	page, err = s.OpenProofs(ctx, at(time.Hour), page[1].ID, 2)
	must(t, err)
	same(t, "second page", hashes(page), []string{"hash-5"})
	late, err := s.OpenProofs(ctx, at(72*time.Hour), 0, 0)
	must(t, err)
	same(t, "open proofs 72 h later", hashes(late), []string{"hash-2"})
}

func testPruneProofs(t *testing.T, s store.Store) {
	ctx := context.Background()
	declarePending(t, s, "old.example", "old", T0)                 // expires T0+72h
	declarePending(t, s, "new.example", "new", at(24*time.Hour))   // expires T0+96h
	declarePending(t, s, "new.example", "newer", at(25*time.Hour)) // expires T0+97h
	n, err := s.PruneProofs(ctx, at(72*time.Hour))
	must(t, err)
	if n != 0 {
		t.Errorf("pruned %d proofs expiring at the cut, want 0", n)
	}
	n, err = s.PruneProofs(ctx, at(96*time.Hour+time.Second))
	must(t, err)
	if n != 2 {
		t.Errorf("pruned %d proofs, want 2", n)
	}
	if ps := proofs(t, s, "old.example"); len(ps) != 0 {
		t.Errorf("old proofs left: %+v", ps)
	}
	if ps := proofs(t, s, "new.example"); len(ps) != 1 || ps[0].TokenHash != "hash-newer" {
		t.Errorf("proofs left: %+v, want the newer one", ps)
	}
	_, err = s.ProofByToken(ctx, "hash-old")
	isErr(t, "ProofByToken(pruned)", err, store.ErrNotFound)
	if p, err := s.ProofByToken(ctx, "hash-newer"); err != nil || p.Domain != "new.example" {
		t.Errorf("ProofByToken(kept) = %+v, %v", p, err)
	}
	if st := state(t, s, "old.example"); st != store.StatePending {
		t.Errorf("pruning changed a state: %s", st)
	}
}

// testRequestRemovalSupersedes: a pending domain whose removal an operator
// requests can no longer be proven by its submission's proof.
func testRequestRemovalSupersedes(t *testing.T, s store.Store) {
	ctx := context.Background()
	declarePending(t, s, "rr.example", "rr", T0)
	must(t, s.RequestRemoval(ctx, "rr.example", "removal.requested: test", at(time.Minute)))
	p, err := s.ProofByToken(ctx, "hash-rr")
	must(t, err)
	if p.SupersededAt == nil || !p.SupersededAt.Equal(store.Time(at(time.Minute))) {
		t.Errorf("add proof after RequestRemoval: %+v, want superseded", p)
	}
	_, err = s.UseProof(ctx, store.ProofUse{Domain: "rr.example", TokenHash: "hash-rr", At: at(2 * time.Minute)})
	isErr(t, "UseProof after RequestRemoval", err, store.ErrProofSuperseded)
}
