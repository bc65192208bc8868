package submit

import (
	"context"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/store"
)

// countingLifecycle counts the proofs look-ups of the status pages.
type countingLifecycle struct {
	Lifecycle
	pending atomic.Int32
}

func (c *countingLifecycle) PendingProofs(ctx context.Context, domain string) ([]lifecycle.Proof, error) {
	c.pending.Add(1)
	return c.Lifecycle.PendingProofs(ctx, domain)
}

// TestStatusReadsProofsOnlyWhenUnused: the status page and API look the
// open proofs up only for a domain with a proof neither used nor
// superseded, and show them then.
func TestStatusReadsProofsOnlyWhenUnused(t *testing.T) {
	var cl *countingLifecycle
	e := newEnv(t, withLifecycle(&staticTXT{}, &mailRecorder{}), func(c *Config) {
		cl = &countingLifecycle{Lifecycle: c.Lifecycle}
		c.Lifecycle = cl
	})
	if err := e.st.AddDomain(context.Background(), store.Domain{Name: "listed.test", State: store.StateTesting, MXPatterns: []string{"mx.listed.test"}}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/domains/listed.test", "/api/v1/domains/listed.test"} {
		if rec := e.get(path); rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, rec.Code)
		}
	}
	if n := cl.pending.Load(); n != 0 {
		t.Errorf("%d proofs look-ups for a domain without proofs, want none", n)
	}
	if rec := e.postJSON("/api/v1/submissions", submitJSON("example.test")); rec.Code != http.StatusAccepted {
		t.Fatalf("submission: %d %s", rec.Code, rec.Body.String())
	}
	v := decode[statusView](t, e.get("/api/v1/domains/example.test"))
	if len(v.PendingProofs) != 1 || cl.pending.Load() != 1 {
		t.Errorf("pending proofs %+v after %d look-ups, want the submission's after one", v.PendingProofs, cl.pending.Load())
	}
}

// TestStatusPageLength: a status page longer than the server's buffer
// goes out with its length, not chunked.
func TestStatusPageLength(t *testing.T) {
	e := newEnv(t)
	if err := e.st.AddDomain(context.Background(), store.Domain{Name: "listed.test", State: store.StateTesting, MXPatterns: []string{"mx.listed.test"}}); err != nil {
		t.Fatal(err)
	}
	rec := e.get("/domains/listed.test")
	if rec.Code != http.StatusOK {
		t.Fatalf("%d", rec.Code)
	}
	if got, want := rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()); got != want {
		t.Errorf("Content-Length %q, want %s", got, want)
	}
	head := e.do(req{method: http.MethodHead, path: "/domains/listed.test"})
	if head.Body.Len() != 0 || head.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
		t.Errorf("HEAD: %d bytes, Content-Length %q", head.Body.Len(), head.Header().Get("Content-Length"))
	}
}
