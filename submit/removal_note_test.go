package submit

import (
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// TestRemovalNoteFollowsTheList: after a removal is proven, the status page
// says the domain leaves the next list while the current list still
// carries it, and once a list without it is published, that it is gone
// from that list (serial) and when mail servers drop it — not "it leaves
// the next list" until a later round marks it removed.
func TestRemovalNoteFollowsTheList(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if err := e.st.AddDomain(ctx, store.Domain{Name: "gone.test", State: store.StateTesting, MXPatterns: []string{"mx.gone.test"}}); err != nil {
		t.Fatal(err)
	}
	e.arch.publish(t, 1, t0, map[string]string{"gone.test": "testing"})
	if err := e.st.RequestRemoval(ctx, "gone.test", "removal.dns: test", t0); err != nil {
		t.Fatal(err)
	}
	page := e.get("/domains/gone.test").Body.String()
	if !strings.Contains(page, "It leaves the next list.") {
		t.Errorf("while listed: the page does not say it leaves the next list:\n%s", page)
	}
	e.arch.publish(t, 2, t0.Add(time.Minute), map[string]string{})
	e.clock.Add(2 * time.Minute)
	page = e.get("/domains/gone.test").Body.String()
	if strings.Contains(page, "It leaves the next list.") || !strings.Contains(page, "not in the current list (serial 2)") {
		t.Errorf("after a list without it: the removal note is wrong:\n%s", page)
	}
	if v := decode[statusView](t, e.get("/api/v1/domains/gone.test")); v.CurrentSerial != 2 || v.Listed != nil {
		t.Errorf("status JSON: current serial %d, listed %+v", v.CurrentSerial, v.Listed)
	}
}

// TestTokenRoutesWithoutLifecycle: an instance that checks no proofs
// answers the mailed link's routes with 503, whatever the token.
func TestTokenRoutesWithoutLifecycle(t *testing.T) {
	e := newEnv(t)
	for _, path := range []string{"/api/v1/domains/example.test/confirm", "/api/v1/domains/example.test/withdraw"} {
		rec := e.postJSON(path, `{"token":"abc"}`)
		if rec.Code != 503 {
			t.Errorf("%s: %d %s", path, rec.Code, rec.Body.String())
		}
	}
}
