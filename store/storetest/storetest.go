// Package storetest is the conformance suite every store.Store backend
// passes: the in-memory store, SQLite and PostgreSQL run the same tests, so
// the service behaves the same whichever one it is configured with.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
//	}
//
// open must return a new, empty store for each call and close it in
// t.Cleanup (or leave it to Run, which closes it too; Close twice must be
// harmless).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// T0 is the suite's reference time: not on a microsecond boundary and not
// in UTC, so that the stores' normalisation is exercised.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

// Run runs the conformance suite against the stores that open returns.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"AddGet", testAddGet},
		{"AddDuplicate", testAddDuplicate},
		{"AddInvalid", testAddInvalid},
		{"AddDomains", testAddDomains},
		{"ListDomains", testListDomains},
		{"CountByState", testCountByState},
		{"UpdateDomain", testUpdateDomain},
		{"Transition", testTransition},
		{"TransitionConcurrent", testTransitionConcurrent},
		{"CheckRacesTransition", testCheckRacesTransition},
		{"RequestRemoval", testRequestRemoval},
		{"RecordCheck", testRecordCheck},
		{"RecordCheckTransition", testRecordCheckTransition},
		{"RecordCheckConflictWritesNothing", testRecordCheckConflict},
		{"RecordCheckWorker", testRecordCheckWorker},
		{"RecordChecksBatch", testRecordChecksBatch},
		{"Checks", testChecks},
		{"PruneChecks", testPruneChecks},
		{"DomainDetail", testDomainDetail},
		{"DomainDetailProofs", testDomainDetailProofs},
		{"ClaimDue", testClaimDue},
		{"ClaimDueLease", testClaimDueLease},
		{"ClaimDueConcurrent", testClaimDueConcurrent},
		{"Release", testRelease},
		{"NextDue", testNextDue},
		{"NextDueManyLeased", testNextDueManyLeased},
		{"Serials", testSerials},
		{"OptOut", testOptOut},
		{"DeclareNew", testDeclareNew},
		{"DeclarePending", testDeclarePending},
		{"DeclareReopen", testDeclareReopen},
		{"DeclareActive", testDeclareActive},
		{"DeclareInvalid", testDeclareInvalid},
		{"DeclareConcurrent", testDeclareConcurrent},
		{"AddProof", testAddProof},
		{"UseProofAdd", testUseProofAdd},
		{"UseProofRefused", testUseProofRefused},
		{"UseProofRemove", testUseProofRemove},
		{"UseProofWithdraw", testUseProofWithdraw},
		{"UseProofConcurrent", testUseProofConcurrent},
		{"OpenProofs", testOpenProofs},
		{"PruneProofs", testPruneProofs},
		{"RequestRemovalSupersedes", testRequestRemovalSupersedes},
		{"Cancelled", testCancelled},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

func at(d time.Duration) time.Time { return T0.Add(d) }

func ptr(t time.Time) *time.Time { return &t }

// same compares two values through their JSON forms (times in UTC with
// microseconds compare equal exactly when the store normalised them).
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(g) != string(w) {
		t.Errorf("%s:\n got  %s\n want %s", what, g, w)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func isErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func add(t *testing.T, s store.Store, name string, st store.State, next time.Time) {
	t.Helper()
	must(t, s.AddDomain(context.Background(), store.Domain{
		Name: name, State: st, MXPatterns: []string{"mx." + name}, CreatedAt: T0, NextCheck: next,
	}))
}

func state(t *testing.T, s store.Store, name string) store.State {
	t.Helper()
	d, err := s.GetDomain(context.Background(), name)
	must(t, err)
	return d.State
}

func testAddGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	d := store.Domain{
		Name:         "example.com",
		State:        store.StateValidating,
		Contact:      "postmaster@example.com",
		MXPatterns:   []string{"mx1.example.com", ".example.net"},
		WantEnforce:  true,
		FollowMTASTS: true,
		Source:       "https://github.com/o/r/pull/1",
		CreatedAt:    T0,
		UpdatedAt:    at(time.Minute),
		NextCheck:    at(time.Hour),
		ChecksPassed: 3,
		PassingSince: ptr(at(-time.Hour)),
		FailingSince: ptr(at(-2 * time.Hour)),
	}
	must(t, s.AddDomain(ctx, d))
	got, err := s.GetDomain(ctx, "example.com")
	must(t, err)
	want := d
	want.CreatedAt, want.UpdatedAt, want.NextCheck = store.Time(d.CreatedAt), store.Time(d.UpdatedAt), store.Time(d.NextCheck)
	want.PassingSince, want.FailingSince = store.TimePtr(d.PassingSince), store.TimePtr(d.FailingSince)
	same(t, "domain", got, want)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt location = %v, want UTC", got.CreatedAt.Location())
	}

	// Defaults: pending, times set, patterns never nil.
	must(t, s.AddDomain(ctx, store.Domain{Name: "bare.example"}))
	got, err = s.GetDomain(ctx, "bare.example")
	must(t, err)
	if got.State != store.StatePending {
		t.Errorf("default state = %q, want pending", got.State)
	}
	if got.CreatedAt.IsZero() || got.UpdatedAt.IsZero() {
		t.Errorf("CreatedAt/UpdatedAt not set: %+v", got)
	}
	if got.MXPatterns == nil {
		t.Errorf("MXPatterns is nil, want empty")
	}
	if got.LastChecked != nil || got.PassingSince != nil || got.FailingSince != nil || got.ClaimedUntil != nil {
		t.Errorf("optional times set on a new domain: %+v", got)
	}

	_, err = s.GetDomain(ctx, "missing.example")
	isErr(t, "GetDomain(missing)", err, store.ErrNotFound)
}

func testAddDuplicate(t *testing.T, s store.Store) {
	add(t, s, "dup.example", store.StatePending, T0)
	err := s.AddDomain(context.Background(), store.Domain{Name: "dup.example", State: store.StateTesting})
	isErr(t, "AddDomain(duplicate)", err, store.ErrAlreadyExists)
	if st := state(t, s, "dup.example"); st != store.StatePending {
		t.Errorf("state after duplicate add = %q, want pending", st)
	}
}

func testAddInvalid(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, d := range []store.Domain{
		{Name: ""},
		{Name: "Upper.example"},
		{Name: "dot.example."},
		{Name: "space .example"},
		{Name: strings.Repeat("a", 254)},
		{Name: "x.example", State: "bogus"},
	} {
		isErr(t, fmt.Sprintf("AddDomain(%+v)", d), s.AddDomain(ctx, d), store.ErrInvalid)
	}
}

func testAddDomains(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "old.example", store.StateEnforce, T0)
	errs, err := s.AddDomains(ctx, []store.Domain{
		{Name: "new1.example", State: store.StateValidating, MXPatterns: []string{".mx.example"}, CreatedAt: T0, NextCheck: at(time.Hour)},
		{Name: "old.example"},
		{Name: ""},
		{Name: "new2.example", Contact: "a@new2.example"},
		{Name: "new1.example"},
		{Name: "bad.example", State: "bogus"},
	})
	must(t, err)
	for i, want := range []error{nil, store.ErrAlreadyExists, store.ErrInvalid, nil, store.ErrAlreadyExists, store.ErrInvalid} {
		if want == nil && errs[i] != nil || want != nil && !errors.Is(errs[i], want) {
			t.Errorf("errs[%d] = %v, want %v", i, errs[i], want)
		}
	}
	d, err := s.GetDomain(ctx, "new1.example")
	must(t, err)
	same(t, "new1", d, store.Domain{Name: "new1.example", State: store.StateValidating, MXPatterns: []string{".mx.example"},
		CreatedAt: store.Time(T0), UpdatedAt: store.Time(T0), NextCheck: store.Time(at(time.Hour))})
	d, err = s.GetDomain(ctx, "new2.example")
	must(t, err)
	if d.State != store.StatePending || d.Contact != "a@new2.example" || d.CreatedAt.IsZero() {
		t.Errorf("new2: %+v", d)
	}
	if st := state(t, s, "old.example"); st != store.StateEnforce {
		t.Errorf("old.example changed to %s", st)
	}
	// A bulk import larger than one statement's chunk.
	var many []store.Domain
	for i := range 2500 {
		many = append(many, store.Domain{Name: fmt.Sprintf("bulk%04d.example", i), CreatedAt: T0})
	}
	errs, err = s.AddDomains(ctx, many)
	must(t, err)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("bulk %d: %v", i, err)
		}
	}
	counts, err := s.CountByState(ctx)
	must(t, err)
	if counts[store.StatePending] != 2501 {
		t.Errorf("%d pending after the bulk import, want 2501", counts[store.StatePending])
	}
}

func testListDomains(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.ListDomains(ctx, store.Filter{})
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Fatalf("empty store: ListDomains = %#v, want empty non-nil", got)
	}
	add(t, s, "c.example", store.StateTesting, T0)
	add(t, s, "a.example", store.StateEnforce, T0)
	add(t, s, "b.example", store.StateValidating, T0)
	add(t, s, "d.example", store.StateTesting, T0)
	names := func(ds []store.Domain) []string {
		out := []string{}
		for _, d := range ds {
			out = append(out, d.Name)
		}
		return out
	}
	for _, tc := range []struct {
		f    store.Filter
		want []string
	}{
		{store.Filter{}, []string{"a.example", "b.example", "c.example", "d.example"}},
		{store.Filter{States: []store.State{store.StateTesting, store.StateEnforce}}, []string{"a.example", "c.example", "d.example"}},
		{store.Filter{States: []store.State{store.StateRemoved}}, []string{}},
		{store.Filter{Limit: 2}, []string{"a.example", "b.example"}},
		{store.Filter{After: "b.example", Limit: 1}, []string{"c.example"}},
		{store.Filter{After: "b.example", States: []store.State{store.StateTesting}}, []string{"c.example", "d.example"}},
	} {
		got, err := s.ListDomains(ctx, tc.f)
		must(t, err)
		same(t, fmt.Sprintf("ListDomains(%+v)", tc.f), names(got), tc.want)
	}
}

func testCountByState(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.CountByState(ctx)
	must(t, err)
	if len(got) != 0 {
		t.Errorf("empty store: CountByState = %v", got)
	}
	add(t, s, "a.example", store.StateTesting, T0)
	add(t, s, "b.example", store.StateTesting, T0)
	add(t, s, "c.example", store.StateEnforce, T0)
	got, err = s.CountByState(ctx)
	must(t, err)
	same(t, "CountByState", got, map[store.State]int{store.StateTesting: 2, store.StateEnforce: 1})
}

func testUpdateDomain(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "u.example", store.StateTesting, T0)
	before, err := s.GetDomain(ctx, "u.example")
	must(t, err)
	upd := before
	upd.State = store.StateEnforce // ignored
	upd.Contact = "ops@u.example"
	upd.MXPatterns = []string{".mail.u.example"}
	upd.WantEnforce = true
	upd.FollowMTASTS = true
	upd.Source = "operator"
	upd.NextCheck = at(5 * time.Hour)
	upd.ChecksPassed = 7
	upd.PassingSince = ptr(at(-24 * time.Hour))
	upd.FailingSince = ptr(at(-time.Minute))
	upd.UpdatedAt = at(time.Hour)
	must(t, s.UpdateDomain(ctx, upd))
	got, err := s.GetDomain(ctx, "u.example")
	must(t, err)
	want := upd
	want.State = store.StateTesting
	want.NextCheck, want.UpdatedAt = store.Time(upd.NextCheck), store.Time(upd.UpdatedAt)
	want.PassingSince, want.FailingSince = store.TimePtr(upd.PassingSince), store.TimePtr(upd.FailingSince)
	same(t, "updated domain", got, want)
	ds, err := s.Decisions(ctx, "u.example")
	must(t, err)
	if len(ds) != 0 {
		t.Errorf("UpdateDomain recorded decisions: %+v", ds)
	}
	isErr(t, "UpdateDomain(missing)", s.UpdateDomain(ctx, store.Domain{Name: "missing.example"}), store.ErrNotFound)
}

func testTransition(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "t.example", store.StateValidating, T0)
	must(t, s.Transition(ctx, "t.example", store.StateValidating, store.StateTesting, "28 passes over 7 days", at(time.Hour)))
	isErr(t, "stale transition", s.Transition(ctx, "t.example", store.StateValidating, store.StateEnforce, "x", at(2*time.Hour)), store.ErrConflict)
	must(t, s.Transition(ctx, "t.example", store.StateTesting, store.StateEnforce, "promotion requested", at(3*time.Hour)))
	isErr(t, "missing", s.Transition(ctx, "missing.example", store.StatePending, store.StateValidating, "", T0), store.ErrNotFound)
	isErr(t, "invalid state", s.Transition(ctx, "t.example", store.StateEnforce, "bogus", "", T0), store.ErrInvalid)

	d, err := s.GetDomain(ctx, "t.example")
	must(t, err)
	if d.State != store.StateEnforce {
		t.Errorf("state = %q, want enforce", d.State)
	}
	if !d.UpdatedAt.Equal(store.Time(at(3 * time.Hour))) {
		t.Errorf("UpdatedAt = %v, want the transition time", d.UpdatedAt)
	}
	ds, err := s.Decisions(ctx, "t.example")
	must(t, err)
	for i := range ds {
		if ds[i].ID == 0 || (i > 0 && ds[i].ID <= ds[i-1].ID) {
			t.Errorf("decision IDs not rising: %+v", ds)
		}
		ds[i].ID = 0
	}
	same(t, "decisions", ds, []store.Decision{
		{Domain: "t.example", At: store.Time(at(time.Hour)), From: store.StateValidating, To: store.StateTesting, Reason: "28 passes over 7 days"},
		{Domain: "t.example", At: store.Time(at(3 * time.Hour)), From: store.StateTesting, To: store.StateEnforce, Reason: "promotion requested"},
	})
	ds, err = s.Decisions(ctx, "missing.example")
	must(t, err)
	if ds == nil || len(ds) != 0 {
		t.Errorf("Decisions(missing) = %#v, want empty non-nil", ds)
	}
}

// testTransitionConcurrent: workers race to move a domain around a cycle of
// states; every successful transition is recorded exactly once and the
// decisions chain (each From is the previous To), so none is lost.
func testTransitionConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "race.example", store.StateTesting, T0)
	cycle := map[store.State]store.State{
		store.StateTesting: store.StateEnforce,
		store.StateEnforce: store.StateDemoted,
		store.StateDemoted: store.StateTesting,
	}
	const workers, tries = 4, 25
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tries {
				d, err := s.GetDomain(ctx, "race.example")
				if err != nil {
					t.Error(err)
					return
				}
				err = s.Transition(ctx, "race.example", d.State, cycle[d.State], fmt.Sprintf("w%d-%d", w, i), at(time.Duration(i)*time.Second))
				switch {
				case err == nil:
					mu.Lock()
					wins++
					mu.Unlock()
				case errors.Is(err, store.ErrConflict):
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ds, err := s.Decisions(ctx, "race.example")
	must(t, err)
	if len(ds) != wins || wins == 0 {
		t.Fatalf("%d decisions for %d successful transitions", len(ds), wins)
	}
	prev := store.StateTesting
	for i, d := range ds {
		if d.From != prev || d.To != cycle[d.From] {
			t.Fatalf("decision %d %+v does not follow state %q", i, d, prev)
		}
		prev = d.To
	}
	if st := state(t, s, "race.example"); st != prev {
		t.Errorf("final state %q, last decision says %q", st, prev)
	}
}

// testCheckRacesTransition: workers recording checks that move the state
// race an operator's transitions on the same domain; each write either
// happens whole or is refused with ErrConflict, and the decisions chain.
func testCheckRacesTransition(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "mixed.example", store.StateTesting, T0)
	cycle := map[store.State]store.State{
		store.StateTesting: store.StateEnforce,
		store.StateEnforce: store.StateDemoted,
		store.StateDemoted: store.StateTesting,
	}
	var mu sync.Mutex
	wins, checks := 0, 0
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				d, err := s.GetDomain(ctx, "mixed.example")
				if err != nil {
					t.Error(err)
					return
				}
				when := at(time.Duration(w*1000+i) * time.Second)
				tr := &store.Transition{From: d.State, To: cycle[d.State], Reason: fmt.Sprintf("w%d-%d", w, i)}
				if w%2 == 0 {
					err = s.Transition(ctx, d.Name, tr.From, tr.To, tr.Reason, when)
				} else {
					err = s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: d.Name, At: when}, NextCheck: when, Transition: tr})
				}
				switch {
				case err == nil:
					mu.Lock()
					wins++
					if w%2 == 1 {
						checks++
					}
					mu.Unlock()
				case errors.Is(err, store.ErrConflict):
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ds, err := s.Decisions(ctx, "mixed.example")
	must(t, err)
	cs, err := s.Checks(ctx, "mixed.example", time.Time{}, 0)
	must(t, err)
	if len(ds) != wins || len(cs) != checks {
		t.Fatalf("%d decisions and %d checks for %d successful writes (%d checks)", len(ds), len(cs), wins, checks)
	}
	prev := store.StateTesting
	for i, d := range ds {
		if d.From != prev {
			t.Fatalf("decision %d %+v does not follow state %q", i, d, prev)
		}
		prev = d.To
	}
	if st := state(t, s, "mixed.example"); st != prev {
		t.Errorf("final state %q, last decision says %q", st, prev)
	}
}

func testRequestRemoval(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "r.example", store.StateEnforce, T0)
	must(t, s.RequestRemoval(ctx, "r.example", "owner asked", at(time.Hour)))
	must(t, s.RequestRemoval(ctx, "r.example", "owner asked again", at(2*time.Hour)))
	if st := state(t, s, "r.example"); st != store.StateRemovalRequested {
		t.Errorf("state = %q", st)
	}
	ds, err := s.Decisions(ctx, "r.example")
	must(t, err)
	if len(ds) != 1 || ds[0].From != store.StateEnforce || ds[0].To != store.StateRemovalRequested || ds[0].Reason != "owner asked" {
		t.Errorf("decisions = %+v, want one enforce→removal_requested", ds)
	}
	must(t, s.Transition(ctx, "r.example", store.StateRemovalRequested, store.StateRemoved, "removed from the list", at(3*time.Hour)))
	isErr(t, "RequestRemoval(removed)", s.RequestRemoval(ctx, "r.example", "", at(4*time.Hour)), store.ErrConflict)
	isErr(t, "RequestRemoval(missing)", s.RequestRemoval(ctx, "missing.example", "", T0), store.ErrNotFound)
}

func findings(code string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"findings": [{"code": %q, "severity": "error"}]}`, code))
}

func testRecordCheck(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "c.example", store.StateValidating, T0)
	u := store.CheckUpdate{
		Check: store.CheckRecord{
			Domain: "c.example", At: at(time.Minute), Eligible: true,
			MXHosts: []string{"mx1.c.example", "mx2.c.example"}, Findings: findings("starttls.ok"),
		},
		NextCheck:    at(6 * time.Hour),
		ChecksPassed: 1,
		PassingSince: ptr(at(time.Minute)),
		MXPatterns:   []string{"mx1.c.example", "mx2.c.example"},
	}
	must(t, s.RecordCheck(ctx, u))
	d, err := s.GetDomain(ctx, "c.example")
	must(t, err)
	same(t, "LastChecked", d.LastChecked, ptr(store.Time(at(time.Minute))))
	same(t, "NextCheck", d.NextCheck, store.Time(at(6*time.Hour)))
	same(t, "UpdatedAt", d.UpdatedAt, store.Time(at(time.Minute)))
	same(t, "PassingSince", d.PassingSince, ptr(store.Time(at(time.Minute))))
	if d.ChecksPassed != 1 || d.FailingSince != nil || d.State != store.StateValidating {
		t.Errorf("domain after check: %+v", d)
	}
	same(t, "MXPatterns", d.MXPatterns, u.MXPatterns)

	// nil MXPatterns leaves them alone.
	u2 := store.CheckUpdate{
		Check:        store.CheckRecord{Domain: "c.example", At: at(2 * time.Minute), Eligible: false, Findings: findings("cert.expired")},
		NextCheck:    at(7 * time.Hour),
		ChecksPassed: 0,
		FailingSince: ptr(at(2 * time.Minute)),
	}
	must(t, s.RecordCheck(ctx, u2))
	d, err = s.GetDomain(ctx, "c.example")
	must(t, err)
	same(t, "MXPatterns kept", d.MXPatterns, u.MXPatterns)
	if d.PassingSince != nil || d.FailingSince == nil || d.ChecksPassed != 0 {
		t.Errorf("counters after failure: %+v", d)
	}

	cs, err := s.Checks(ctx, "c.example", time.Time{}, 0)
	must(t, err)
	if len(cs) != 2 {
		t.Fatalf("%d checks, want 2", len(cs))
	}
	if cs[0].ID == 0 || cs[1].ID == 0 || cs[0].ID == cs[1].ID {
		t.Errorf("check IDs: %d %d", cs[0].ID, cs[1].ID)
	}
	cs[0].ID, cs[1].ID = 0, 0
	same(t, "checks", cs, []store.CheckRecord{
		{Domain: "c.example", At: store.Time(at(2 * time.Minute)), MXHosts: []string{}, Findings: findings("cert.expired")},
		{Domain: "c.example", At: store.Time(at(time.Minute)), Eligible: true, MXHosts: []string{"mx1.c.example", "mx2.c.example"}, Findings: findings("starttls.ok")},
	})
	// Findings come back byte for byte.
	if string(cs[0].Findings) != string(findings("cert.expired")) {
		t.Errorf("findings not verbatim: %s", cs[0].Findings)
	}

	err = s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "missing.example", At: T0}})
	isErr(t, "RecordCheck(missing)", err, store.ErrNotFound)
	err = s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "c.example", At: T0, Findings: json.RawMessage("{not json")}})
	isErr(t, "RecordCheck(bad findings)", err, store.ErrInvalid)
}

func testRecordCheckTransition(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "ct.example", store.StateTesting, T0)
	must(t, s.RecordCheck(ctx, store.CheckUpdate{
		Check:        store.CheckRecord{Domain: "ct.example", At: at(time.Hour), Findings: findings("mx.pattern_mismatch")},
		NextCheck:    at(2 * time.Hour),
		FailingSince: ptr(at(time.Hour)),
		Transition:   &store.Transition{From: store.StateTesting, To: store.StateDemoted, Reason: "mx.pattern_mismatch: mx3.other.example"},
	}))
	d, err := s.GetDomain(ctx, "ct.example")
	must(t, err)
	if d.State != store.StateDemoted {
		t.Errorf("state = %q, want demoted", d.State)
	}
	ds, err := s.Decisions(ctx, "ct.example")
	must(t, err)
	if len(ds) != 1 || ds[0].From != store.StateTesting || ds[0].To != store.StateDemoted || !ds[0].At.Equal(store.Time(at(time.Hour))) {
		t.Errorf("decisions = %+v", ds)
	}
}

func testRecordCheckConflict(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "cc.example", store.StateEnforce, at(time.Hour))
	err := s.RecordCheck(ctx, store.CheckUpdate{
		Check:        store.CheckRecord{Domain: "cc.example", At: at(time.Hour), Eligible: true},
		NextCheck:    at(9 * time.Hour),
		ChecksPassed: 99,
		Transition:   &store.Transition{From: store.StateTesting, To: store.StateEnforce, Reason: "x"},
	})
	isErr(t, "RecordCheck(stale transition)", err, store.ErrConflict)
	d, err := s.GetDomain(ctx, "cc.example")
	must(t, err)
	if d.ChecksPassed != 0 || d.LastChecked != nil || !d.NextCheck.Equal(store.Time(at(time.Hour))) || d.State != store.StateEnforce {
		t.Errorf("a conflicting update was partly applied: %+v", d)
	}
	cs, err := s.Checks(ctx, "cc.example", time.Time{}, 0)
	must(t, err)
	ds, err := s.Decisions(ctx, "cc.example")
	must(t, err)
	if len(cs) != 0 || len(ds) != 0 {
		t.Errorf("a conflicting update wrote %d checks and %d decisions", len(cs), len(ds))
	}
	isErr(t, "RecordCheck(invalid transition)", s.RecordCheck(ctx, store.CheckUpdate{
		Check:      store.CheckRecord{Domain: "cc.example", At: at(time.Hour)},
		Transition: &store.Transition{From: store.StateEnforce, To: "bogus"},
	}), store.ErrInvalid)
}

func testRecordCheckWorker(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "w.example", store.StateTesting, T0)
	// Not claimed by w1: refused.
	err := s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "w.example", At: T0, Worker: "w1"}, NextCheck: at(time.Hour)})
	isErr(t, "RecordCheck(unclaimed, worker set)", err, store.ErrConflict)

	got, err := s.ClaimDue(ctx, "w1", T0, 10, time.Minute)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("claimed %d, want 1", len(got))
	}
	// w1's lease expires and w2 takes the domain over: w1 may no longer record.
	got, err = s.ClaimDue(ctx, "w2", at(2*time.Minute), 10, time.Minute)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("w2 claimed %d after w1's lease expired, want 1", len(got))
	}
	err = s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "w.example", At: at(2 * time.Minute), Worker: "w1"}, NextCheck: at(time.Hour)})
	isErr(t, "RecordCheck(lease lost)", err, store.ErrConflict)
	must(t, s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "w.example", At: at(2 * time.Minute), Worker: "w2"}, NextCheck: at(time.Hour)}))
	d, err := s.GetDomain(ctx, "w.example")
	must(t, err)
	if d.ClaimedBy != "" || d.ClaimedUntil != nil {
		t.Errorf("claim not released by RecordCheck: %+v", d)
	}
	cs, err := s.Checks(ctx, "w.example", time.Time{}, 0)
	must(t, err)
	if len(cs) != 1 || cs[0].Worker != "w2" {
		t.Errorf("checks = %+v, want one by w2", cs)
	}
}

func testRecordChecksBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "b1.example", store.StateValidating, T0)
	add(t, s, "b2.example", store.StateTesting, T0)
	us := []store.CheckUpdate{
		{Check: store.CheckRecord{Domain: "b1.example", At: at(time.Minute), Eligible: true}, NextCheck: at(time.Hour), ChecksPassed: 1},
		{Check: store.CheckRecord{Domain: "missing.example", At: at(time.Minute)}},
		{Check: store.CheckRecord{Domain: "b2.example", At: at(time.Minute)}, NextCheck: at(time.Hour),
			Transition: &store.Transition{From: store.StateEnforce, To: store.StateDemoted}},
		{Check: store.CheckRecord{Domain: "b2.example", At: at(2 * time.Minute), Eligible: true}, NextCheck: at(2 * time.Hour), ChecksPassed: 5,
			Transition: &store.Transition{From: store.StateTesting, To: store.StateEnforce, Reason: "promoted"}},
	}
	errs, err := s.RecordChecks(ctx, us)
	must(t, err)
	if len(errs) != len(us) {
		t.Fatalf("%d errors for %d updates", len(errs), len(us))
	}
	for i, want := range []error{nil, store.ErrNotFound, store.ErrConflict, nil} {
		if want == nil && errs[i] != nil || want != nil && !errors.Is(errs[i], want) {
			t.Errorf("errs[%d] = %v, want %v", i, errs[i], want)
		}
	}
	d1, err := s.GetDomain(ctx, "b1.example")
	must(t, err)
	d2, err := s.GetDomain(ctx, "b2.example")
	must(t, err)
	if d1.ChecksPassed != 1 || d2.ChecksPassed != 5 || d2.State != store.StateEnforce {
		t.Errorf("after batch: %+v %+v", d1, d2)
	}
	cs, err := s.Checks(ctx, "b2.example", time.Time{}, 0)
	must(t, err)
	if len(cs) != 1 {
		t.Errorf("b2 has %d checks, want 1 (the conflicting one writes nothing)", len(cs))
	}
	// The same domain twice in a batch: the second update sees the first.
	errs, err = s.RecordChecks(ctx, []store.CheckUpdate{
		{Check: store.CheckRecord{Domain: "b1.example", At: at(3 * time.Minute), Eligible: true}, NextCheck: at(3 * time.Hour), ChecksPassed: 2,
			Transition: &store.Transition{From: store.StateValidating, To: store.StateTesting, Reason: "admitted"}},
		{Check: store.CheckRecord{Domain: "b1.example", At: at(4 * time.Minute)}, NextCheck: at(4 * time.Hour), ChecksPassed: 0,
			Transition: &store.Transition{From: store.StateTesting, To: store.StateDemoted, Reason: "failed"}},
		{Check: store.CheckRecord{Domain: "b1.example", At: at(5 * time.Minute)}, NextCheck: at(5 * time.Hour),
			Transition: &store.Transition{From: store.StateTesting, To: store.StateEnforce, Reason: "stale"}},
	})
	must(t, err)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], store.ErrConflict) {
		t.Errorf("repeated domain in a batch: errs = %v, want nil, nil, conflict", errs)
	}
	d1, err = s.GetDomain(ctx, "b1.example")
	must(t, err)
	if d1.State != store.StateDemoted || !d1.NextCheck.Equal(store.Time(at(4*time.Hour))) {
		t.Errorf("after repeated updates: %+v", d1)
	}
	cs, err = s.Checks(ctx, "b1.example", time.Time{}, 0)
	must(t, err)
	if len(cs) != 3 {
		t.Errorf("b1 has %d checks, want 3", len(cs))
	}

	errs, err = s.RecordChecks(ctx, nil)
	must(t, err)
	if len(errs) != 0 {
		t.Errorf("empty batch: %v", errs)
	}
}

func testChecks(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "h.example", store.StateValidating, T0)
	add(t, s, "other.example", store.StateValidating, T0)
	for i := range 10 {
		must(t, s.RecordCheck(ctx, store.CheckUpdate{
			Check:     store.CheckRecord{Domain: "h.example", At: at(time.Duration(i) * time.Hour), Eligible: i%2 == 0},
			NextCheck: at(time.Duration(i+1) * time.Hour),
		}))
	}
	must(t, s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "other.example", At: at(5 * time.Hour)}}))
	hours := func(cs []store.CheckRecord) []int {
		out := []int{}
		for _, c := range cs {
			out = append(out, int(c.At.Sub(store.Time(T0))/time.Hour))
		}
		return out
	}
	for _, tc := range []struct {
		since time.Time
		limit int
		want  []int
	}{
		{time.Time{}, 0, []int{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}},
		{time.Time{}, 3, []int{9, 8, 7}},
		{at(7 * time.Hour), 0, []int{9, 8, 7}},
		{at(10 * time.Hour), 0, []int{}},
	} {
		cs, err := s.Checks(ctx, "h.example", tc.since, tc.limit)
		must(t, err)
		same(t, fmt.Sprintf("Checks(since %v, limit %d)", tc.since, tc.limit), hours(cs), tc.want)
	}
	cs, err := s.Checks(ctx, "missing.example", time.Time{}, 0)
	must(t, err)
	if cs == nil || len(cs) != 0 {
		t.Errorf("Checks(missing) = %#v, want empty non-nil", cs)
	}
}

// testDomainDetail: DomainDetail says what GetDomain, Checks and
// Decisions say, of that domain only.
func testDomainDetail(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.DomainDetail(ctx, "missing.example", 10)
	isErr(t, "DomainDetail(missing)", err, store.ErrNotFound)
	add(t, s, "d.example", store.StateValidating, T0)
	add(t, s, "other.example", store.StateValidating, T0)
	empty, err := s.DomainDetail(ctx, "d.example", 10)
	must(t, err)
	if empty.Checks == nil || len(empty.Checks) != 0 || empty.Decisions == nil || len(empty.Decisions) != 0 || empty.UnusedProofs {
		t.Errorf("DomainDetail of a new domain = %+v, want empty non-nil history and no proofs", empty)
	}
	for i := range 6 {
		u := store.CheckUpdate{
			Check: store.CheckRecord{Domain: "d.example", At: at(time.Duration(i) * time.Hour), Eligible: i != 2,
				MXHosts: []string{"mx.d.example"}, Findings: findings(fmt.Sprintf("code.%d", i))},
			NextCheck: at(time.Duration(i+1) * time.Hour), ChecksPassed: i,
		}
		if i == 5 {
			u.Transition = &store.Transition{From: store.StateValidating, To: store.StateTesting, Reason: "admitted: test"}
		}
		must(t, s.RecordCheck(ctx, u))
		must(t, s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: "other.example", At: at(time.Duration(i) * time.Hour)}}))
	}
	must(t, s.Transition(ctx, "other.example", store.StateValidating, store.StateTesting, "other: test", at(7*time.Hour)))
	must(t, s.Transition(ctx, "d.example", store.StateTesting, store.StateEnforce, "promoted: test", at(8*time.Hour)))
	d, err := s.GetDomain(ctx, "d.example")
	must(t, err)
	ds, err := s.Decisions(ctx, "d.example")
	must(t, err)
	for _, limit := range []int{0, 1, 4, 6, 100} {
		cs, err := s.Checks(ctx, "d.example", time.Time{}, limit)
		must(t, err)
		got, err := s.DomainDetail(ctx, "d.example", limit)
		must(t, err)
		same(t, fmt.Sprintf("DomainDetail(limit %d)", limit), got, store.Detail{Domain: d, Checks: cs, Decisions: ds})
	}
	if len(ds) != 2 {
		t.Errorf("decisions = %+v, want two", ds)
	}

	// Every column of the domain set, with text that needs escaping in
	// JSON, and a worker's claim.
	since, failing := at(-48*time.Hour), at(-time.Hour)
	must(t, s.AddDomain(ctx, store.Domain{
		Name: "full.example", State: store.StateValidating, Contact: `o"dd\name <x@exämple.test>`,
		MXPatterns: []string{"mx1.full.example", `.mx"\.example`}, WantEnforce: true, FollowMTASTS: true,
		Source: "https://github.com/o/r/pull/1", CreatedAt: T0, NextCheck: T0, ChecksPassed: 3,
		PassingSince: &since, FailingSince: &failing,
	}))
	claimed, err := s.ClaimDue(ctx, "worker \"1\"", T0, 10, time.Minute)
	must(t, err)
	if !slices.ContainsFunc(claimed, func(d store.Domain) bool { return d.Name == "full.example" }) {
		t.Fatalf("claimed %+v, want full.example among them", claimed)
	}
	full, err := s.GetDomain(ctx, "full.example")
	must(t, err)
	got, err := s.DomainDetail(ctx, "full.example", 10)
	must(t, err)
	same(t, "DomainDetail(full.example)", got, store.Detail{Domain: full, Checks: []store.CheckRecord{}, Decisions: []store.Decision{}})
}

// testDomainDetailProofs: UnusedProofs is set while the domain has a proof
// neither used nor superseded, expired or not.
func testDomainDetailProofs(t *testing.T, s store.Store) {
	ctx := context.Background()
	unused := func(name string) bool {
		t.Helper()
		d, err := s.DomainDetail(ctx, name, 1)
		must(t, err)
		return d.UnusedProofs
	}
	declarePending(t, s, "p.example", "p", T0)
	declarePending(t, s, "q.example", "q", T0) // another domain's proof counts for it only
	if !unused("p.example") {
		t.Error("pending with its proof: UnusedProofs false")
	}
	_, err := s.UseProof(ctx, store.ProofUse{Domain: "p.example", TokenHash: "hash-p", UsedBy: "mail", Reason: "ownership.mail: test", At: at(time.Hour)})
	must(t, err)
	if unused("p.example") {
		t.Error("proof used: UnusedProofs true")
	}
	_, err = s.AddProof(ctx, proof("p.example", store.PurposeRemove, "rm", at(2*time.Hour)))
	must(t, err)
	if !unused("p.example") {
		t.Error("removal proof open: UnusedProofs false")
	}
	must(t, s.RequestRemoval(ctx, "q.example", "removal: test", at(time.Hour)))
	if unused("q.example") {
		t.Error("add proof superseded by a removal request: UnusedProofs true")
	}
	if !unused("p.example") {
		t.Error("another domain's removal request changed UnusedProofs")
	}
}

func testPruneChecks(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "p.example", store.StateTesting, T0)
	must(t, s.Transition(ctx, "p.example", store.StateTesting, store.StateEnforce, "promoted", T0))
	for i := range 5 {
		must(t, s.RecordCheck(ctx, store.CheckUpdate{
			Check: store.CheckRecord{Domain: "p.example", At: at(time.Duration(i) * time.Hour)}, NextCheck: at(time.Duration(i+1) * time.Hour),
		}))
	}
	n, err := s.PruneChecks(ctx, at(2*time.Hour))
	must(t, err)
	if n != 2 {
		t.Errorf("pruned %d checks, want 2", n)
	}
	cs, err := s.Checks(ctx, "p.example", time.Time{}, 0)
	must(t, err)
	if len(cs) != 3 || !cs[2].At.Equal(store.Time(at(2*time.Hour))) {
		t.Errorf("after pruning: %d checks, oldest %v", len(cs), cs[len(cs)-1].At)
	}
	ds, err := s.Decisions(ctx, "p.example")
	must(t, err)
	if len(ds) != 1 {
		t.Errorf("pruning touched decisions: %+v", ds)
	}
}

func names(ds []store.Domain) []string {
	out := []string{}
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

func testClaimDue(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "late.example", store.StateTesting, at(3*time.Minute))
	add(t, s, "early.example", store.StateEnforce, at(time.Minute))
	add(t, s, "mid.example", store.StateValidating, at(2*time.Minute))
	add(t, s, "future.example", store.StateTesting, at(time.Hour))
	add(t, s, "gone.example", store.StateRemoved, T0)

	got, err := s.ClaimDue(ctx, "w1", at(5*time.Minute), 2, time.Minute)
	must(t, err)
	same(t, "first claim", names(got), []string{"early.example", "mid.example"})
	for _, d := range got {
		if d.ClaimedBy != "w1" || d.ClaimedUntil == nil || !d.ClaimedUntil.Equal(store.Time(at(6*time.Minute))) {
			t.Errorf("claim fields: %+v", d)
		}
	}
	got, err = s.ClaimDue(ctx, "w2", at(5*time.Minute), 10, time.Minute)
	must(t, err)
	same(t, "second claim", names(got), []string{"late.example"})
	got, err = s.ClaimDue(ctx, "w3", at(5*time.Minute), 10, time.Minute)
	must(t, err)
	same(t, "nothing left", names(got), []string{})
	d, err := s.GetDomain(ctx, "early.example")
	must(t, err)
	if d.ClaimedBy != "w1" {
		t.Errorf("GetDomain ClaimedBy = %q, want w1", d.ClaimedBy)
	}
	_, err = s.ClaimDue(ctx, "", T0, 1, time.Minute)
	isErr(t, "ClaimDue(no worker)", err, store.ErrInvalid)
}

func testClaimDueLease(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 5 {
		add(t, s, fmt.Sprintf("d%d.example", i), store.StateTesting, T0)
	}
	got, err := s.ClaimDue(ctx, "dead", T0, 10, time.Minute)
	must(t, err)
	if len(got) != 5 {
		t.Fatalf("claimed %d, want 5", len(got))
	}
	// The worker records two checks and dies.
	for _, d := range got[:2] {
		must(t, s.RecordCheck(ctx, store.CheckUpdate{Check: store.CheckRecord{Domain: d.Name, At: T0, Worker: "dead"}, NextCheck: at(time.Hour)}))
	}
	got, err = s.ClaimDue(ctx, "alive", at(59*time.Second), 10, time.Minute)
	must(t, err)
	same(t, "before the lease expires", names(got), []string{})
	got, err = s.ClaimDue(ctx, "alive", at(time.Minute), 10, time.Minute)
	must(t, err)
	same(t, "after the lease expires", names(got), []string{"d2.example", "d3.example", "d4.example"})
}

// testClaimDueConcurrent: concurrent claimers never receive the same domain.
func testClaimDueConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 200
	for i := range n {
		add(t, s, fmt.Sprintf("d%03d.example", i), store.StateTesting, at(time.Duration(i)*time.Millisecond))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			worker := fmt.Sprintf("w%d", w)
			for {
				got, err := s.ClaimDue(ctx, worker, at(time.Hour), 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					if prev, ok := seen[d.Name]; ok {
						t.Errorf("%s claimed by %s and %s", d.Name, prev, worker)
					}
					seen[d.Name] = worker
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("%d domains claimed, want %d", len(seen), n)
	}
}

// testNextDue: the earliest due time of the domains not removed, a live
// lease counting until it ends.
func testNextDue(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.NextDue(ctx)
	isErr(t, "NextDue(empty)", err, store.ErrNotFound)
	add(t, s, "gone.example", store.StateRemoved, T0)
	_, err = s.NextDue(ctx)
	isErr(t, "NextDue(removed only)", err, store.ErrNotFound)
	add(t, s, "late.example", store.StateTesting, at(time.Hour))
	add(t, s, "early.example", store.StateValidating, at(time.Minute))
	add(t, s, "pending.example", store.StatePending, at(30*time.Minute))
	next, err := s.NextDue(ctx)
	must(t, err)
	same(t, "next due", next, store.Time(at(time.Minute)))
	// Claimed until +40m: pending.example (+30m) comes first.
	got, err := s.ClaimDue(ctx, "w1", at(time.Minute), 1, 39*time.Minute)
	must(t, err)
	same(t, "claimed", names(got), []string{"early.example"})
	next, err = s.NextDue(ctx)
	must(t, err)
	same(t, "next due with a lease", next, store.Time(at(30*time.Minute)))
	// early.example leased until +40m, pending.example until +45m: the
	// first lease to end is next.
	_, err = s.ClaimDue(ctx, "w1", at(30*time.Minute), 1, 15*time.Minute)
	must(t, err)
	next, err = s.NextDue(ctx)
	must(t, err)
	same(t, "next due when every early domain is leased", next, store.Time(at(40*time.Minute)))
	must(t, s.Release(ctx, "w1", []string{"early.example", "pending.example"}, at(2*time.Hour)))
	next, err = s.NextDue(ctx)
	must(t, err)
	same(t, "next due after release", next, store.Time(at(time.Hour)))
}

// testNextDueManyLeased: with more of the earliest domains under leases
// than a store reads at once, NextDue may answer early, never late.
func testNextDueManyLeased(t *testing.T, s store.Store) {
	ctx := context.Background()
	ds := make([]store.Domain, 0, 2001)
	for i := range 2000 {
		ds = append(ds, store.Domain{Name: fmt.Sprintf("d%04d.example", i), State: store.StateTesting, NextCheck: at(time.Duration(i) * time.Second)})
	}
	ds = append(ds, store.Domain{Name: "free.example", State: store.StateTesting, NextCheck: at(50 * time.Minute)})
	errs, err := s.AddDomains(ctx, ds)
	must(t, err)
	for _, err := range errs {
		must(t, err)
	}
	got, err := s.ClaimDue(ctx, "w1", at(40*time.Minute), 5000, 2*time.Hour)
	must(t, err)
	if len(got) != 2000 {
		t.Fatalf("claimed %d, want 2000", len(got))
	}
	next, err := s.NextDue(ctx)
	must(t, err)
	if next.After(store.Time(at(50 * time.Minute))) {
		t.Errorf("NextDue = %v, after free.example falls due (%v)", next, store.Time(at(50*time.Minute)))
	}
}

func testRelease(t *testing.T, s store.Store) {
	ctx := context.Background()
	add(t, s, "r1.example", store.StateTesting, T0)
	add(t, s, "r2.example", store.StateTesting, T0)
	got, err := s.ClaimDue(ctx, "w1", T0, 10, time.Hour)
	must(t, err)
	if len(got) != 2 {
		t.Fatalf("claimed %d", len(got))
	}
	must(t, s.Release(ctx, "other", []string{"r1.example"}, at(time.Hour))) // not other's: no effect
	must(t, s.Release(ctx, "w1", []string{"r1.example", "missing.example"}, time.Time{}))
	must(t, s.Release(ctx, "w1", []string{"r2.example"}, at(time.Hour)))
	got, err = s.ClaimDue(ctx, "w2", T0, 10, time.Hour)
	must(t, err)
	same(t, "claimable after release", names(got), []string{"r1.example"})
	d, err := s.GetDomain(ctx, "r2.example")
	must(t, err)
	if d.ClaimedBy != "" || !d.NextCheck.Equal(store.Time(at(time.Hour))) {
		t.Errorf("r2 after release: %+v", d)
	}

	// Releasing more names than one statement takes.
	var many []store.Domain
	for i := range 1500 {
		many = append(many, store.Domain{Name: fmt.Sprintf("m%04d.example", i), State: store.StateTesting, CreatedAt: T0, NextCheck: T0})
	}
	errs, err := s.AddDomains(ctx, many)
	must(t, err)
	must(t, errors.Join(errs...))
	got, err = s.ClaimDue(ctx, "w3", at(time.Minute), 2000, time.Hour)
	must(t, err)
	if len(got) != 1500 {
		t.Fatalf("claimed %d, want 1500", len(got))
	}
	must(t, s.Release(ctx, "w3", names(got), time.Time{}))
	got, err = s.ClaimDue(ctx, "w4", at(time.Minute), 2000, time.Hour)
	must(t, err)
	if len(got) != 1500 {
		t.Errorf("claimable after releasing 1,500: %d", len(got))
	}
}

func testSerials(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.LatestList(ctx)
	isErr(t, "LatestList(empty)", err, store.ErrNotFound)
	a, err := s.NextSerial(ctx)
	must(t, err)
	b, err := s.NextSerial(ctx)
	must(t, err)
	if a <= 0 || b <= a {
		t.Errorf("serials %d, %d: want positive and rising", a, b)
	}
	l := store.ListRecord{Serial: b + 10, Timestamp: T0, Expires: at(7 * 24 * time.Hour), SHA256: "ab12", Entries: 3}
	must(t, s.SaveList(ctx, l))
	isErr(t, "SaveList(duplicate)", s.SaveList(ctx, l), store.ErrAlreadyExists)
	must(t, s.SaveList(ctx, store.ListRecord{Serial: a, Timestamp: T0, Expires: T0}))
	got, err := s.LatestList(ctx)
	must(t, err)
	want := l
	want.Timestamp, want.Expires = store.Time(l.Timestamp), store.Time(l.Expires)
	same(t, "LatestList", got, want)
	c, err := s.NextSerial(ctx)
	must(t, err)
	if c <= l.Serial {
		t.Errorf("NextSerial = %d after saving serial %d", c, l.Serial)
	}
	// Concurrent callers get distinct serials.
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				n, err := s.NextSerial(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("serial %d handed out twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	all := make([]int64, 0, len(seen))
	for n := range seen {
		all = append(all, n)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 && all[0] <= c {
		t.Errorf("serial %d not above %d", all[0], c)
	}
}

func testOptOut(t *testing.T, s store.Store) {
	ctx := context.Background()
	ok, err := s.IsOptedOut(ctx, "o.example")
	must(t, err)
	if ok {
		t.Error("opted out before AddOptOut")
	}
	must(t, s.AddOptOut(ctx, "o.example", "operator asked by mail", T0))
	must(t, s.AddOptOut(ctx, "o.example", "again", T0))
	ok, err = s.IsOptedOut(ctx, "o.example")
	must(t, err)
	if !ok {
		t.Error("not opted out after AddOptOut")
	}
	must(t, s.RemoveOptOut(ctx, "o.example"))
	must(t, s.RemoveOptOut(ctx, "o.example"))
	ok, err = s.IsOptedOut(ctx, "o.example")
	must(t, err)
	if ok {
		t.Error("still opted out after RemoveOptOut")
	}
	isErr(t, "AddOptOut(empty)", s.AddOptOut(ctx, "", "", T0), store.ErrInvalid)
}

func testCancelled(t *testing.T, s store.Store) {
	add(t, s, "x.example", store.StateTesting, T0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetDomain(ctx, "x.example"); err == nil {
		t.Error("GetDomain with a cancelled context succeeded")
	}
	if err := s.Transition(ctx, "x.example", store.StateTesting, store.StateEnforce, "", T0); err == nil {
		t.Error("Transition with a cancelled context succeeded")
	}
	if st := state(t, s, "x.example"); st != store.StateTesting {
		t.Errorf("state = %q after a cancelled transition", st)
	}
}

func testClosed(t *testing.T, s store.Store) {
	add(t, s, "x.example", store.StateTesting, T0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := s.GetDomain(ctx, "x.example")
	isErr(t, "GetDomain after Close", err, store.ErrClosed)
	isErr(t, "Transition after Close", s.Transition(ctx, "x.example", store.StateTesting, store.StateEnforce, "", T0), store.ErrClosed)
	_, err = s.ClaimDue(ctx, "w", T0, 1, time.Minute)
	isErr(t, "ClaimDue after Close", err, store.ErrClosed)
}
