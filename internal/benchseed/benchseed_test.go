package benchseed

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

func TestSeed(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	var progress []int
	if err := Seed(ctx, st, 25, 3, now, func(n int) { progress = append(progress, n) }); err != nil {
		t.Fatal(err)
	}
	if len(progress) != 1 || progress[0] != 25 {
		t.Errorf("progress %v", progress)
	}
	counts, err := st.CountByState(ctx)
	if err != nil || counts[store.StateEnforce] != 3 || counts[store.StateTesting] != 22 {
		t.Errorf("states %v %v, want 3 enforce (every tenth) and 22 testing", counts, err)
	}
	d, err := st.GetDomain(ctx, Name(7))
	if err != nil || d.State != store.StateTesting || !d.NextCheck.After(now.Add(300*24*time.Hour)) {
		t.Errorf("%s: %+v %v", Name(7), d, err)
	}
	checks, err := st.Checks(ctx, Name(7), time.Time{}, 0)
	if err != nil || len(checks) != 3 || !checks[0].Eligible {
		t.Fatalf("checks %+v %v", checks, err)
	}
	var fs []validate.Finding
	if err := json.Unmarshal(checks[0].Findings, &fs); err != nil || len(fs) != 2 || fs[1].Code != validate.CodeTLSRPTNotPublished {
		t.Errorf("findings %s: %v; want the findings array the scheduler stores", checks[0].Findings, err)
	}
	decs, err := st.Decisions(ctx, Name(10))
	if err != nil || len(decs) != 2 || decs[1].To != store.StateEnforce {
		t.Errorf("decisions of %s: %+v %v", Name(10), decs, err)
	}
	if err := Seed(ctx, st, 0, 1, now, nil); err == nil {
		t.Error("seeding no domains: no error")
	}
}
