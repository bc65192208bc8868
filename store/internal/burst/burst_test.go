package burst

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
)

var errStop = errors.New("stop")

// stopAfter fails the n-th write: Crash writes a line after each commit,
// so the burst ends after n commits.
type stopAfter struct{ n int }

func (w *stopAfter) Write(p []byte) (int, error) {
	w.n -= strings.Count(string(p), "\n")
	if w.n <= 0 {
		return 0, errStop
	}
	return len(p), nil
}

// TestVerifyCrash: VerifyCrash accepts what Crash writes and catches a
// half-applied transition and a lost check.
func TestVerifyCrash(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	if err := Seed(ctx, s, CrashDomains, store.StateTesting); err != nil {
		t.Fatal(err)
	}
	if err := Crash(ctx, s, &stopAfter{n: 50}); !errors.Is(err, errStop) {
		t.Fatalf("Crash = %v", err)
	}
	checks, decisions, err := VerifyCrash(ctx, s, CrashDomains)
	if err != nil {
		t.Fatal(err)
	}
	if checks != ChecksAfter(50) || decisions == 0 {
		t.Fatalf("%d checks (want %d), %d decisions", checks, ChecksAfter(50), decisions)
	}

	// A transition that claims to come from a check but has none.
	d, err := s.GetDomain(ctx, Name(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Transition(ctx, d.Name, d.State, cycle[d.State], "check: forged", T0); err != nil {
		t.Fatal(err)
	}
	// A check whose counter update was lost.
	d, err = s.GetDomain(ctx, Name(4))
	if err != nil {
		t.Fatal(err)
	}
	u := update(d, T0, false)
	u.ChecksPassed = d.ChecksPassed
	if err := s.RecordCheck(ctx, u); err != nil {
		t.Fatal(err)
	}
	_, _, err = VerifyCrash(ctx, s, CrashDomains)
	if err == nil || !strings.Contains(err.Error(), Name(3)+": decision at") || !strings.Contains(err.Error(), Name(4)+": ChecksPassed") {
		t.Fatalf("VerifyCrash = %v, want both problems reported", err)
	}
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		from store.State
		pass bool
		want store.State
	}{
		{store.StateValidating, true, store.StateTesting},
		{store.StateValidating, false, store.StateValidating},
		{store.StateTesting, true, store.StateEnforce},
		{store.StateTesting, false, store.StateDemoted},
		{store.StateEnforce, true, store.StateEnforce},
		{store.StateEnforce, false, store.StateDemoted},
		{store.StateDemoted, true, store.StateTesting},
		{store.StateDemoted, false, store.StateDemoted},
	} {
		if got := Next(tc.from, tc.pass); got != tc.want {
			t.Errorf("Next(%s, %v) = %s, want %s", tc.from, tc.pass, got, tc.want)
		}
	}
}
