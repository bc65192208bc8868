package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

func TestStatusHandler(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(t0)
	h := NewStatusHandler(st, DefaultRules())
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/api/v1/domains"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("empty list: %d %s", code, body)
	}
	addDomain(t, st, "a.test", Validating, t0, "mx.a.test")
	addDomain(t, st, "b.test", Demoted, t0, "mx.b.test")
	fc := &fakeChecker{answer: func(d string) *validate.Result { return failResult(d, "mx."+d) }}
	s := newTestScheduler(t, st, fc, clock, &recordingNotifier{})
	if _, err := s.RunRound(ctx); err != nil {
		t.Fatal(err)
	}

	code, body := get("/api/v1/domains?limit=1")
	var page []Status
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page) != 1 || page[0].Domain != "a.test" {
		t.Errorf("first page: %d %s", code, body)
	}
	code, body = get("/api/v1/domains?after=a.test")
	if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page) != 1 || page[0].Domain != "b.test" ||
		page[0].ListedAs != "testing" || page[0].ChecksNeeded != 0 {
		t.Errorf("second page: %d %s", code, body)
	}
	if code, _ := get("/api/v1/domains?limit=x"); code != http.StatusBadRequest {
		t.Errorf("bad limit: %d", code)
	}
	if code, _ := get("/api/v1/domains/absent.test"); code != http.StatusNotFound {
		t.Errorf("absent domain: %d", code)
	}
	code, body = get("/api/v1/domains/A.TEST")
	var d Detail
	if code != 200 || json.Unmarshal([]byte(body), &d) != nil {
		t.Fatalf("detail: %d %s", code, body)
	}
	if d.Domain != "a.test" || d.ChecksNeeded != 28 || len(d.Checks) != 1 || d.Checks[0].Eligible ||
		!strings.Contains(string(d.Checks[0].Findings), "cert.expired") || d.Decisions == nil {
		t.Errorf("detail = %+v", d)
	}
	if strings.Contains(body, "postmaster@") {
		t.Error("the status API shows the contact")
	}
	if d.LastChecked == nil || !d.LastChecked.Equal(t0) || d.FailingSince == nil {
		t.Errorf("times: last %v failing %v", d.LastChecked, d.FailingSince)
	}
}

// TestStatusHandlerErrorsAreJSON: paths the API does not serve and other
// methods get a JSON error, as the routes do.
func TestStatusHandlerErrorsAreJSON(t *testing.T) {
	h := NewStatusHandler(memstore.New(), DefaultRules())
	tests := []struct {
		method, target string
		code           int
	}{
		{http.MethodGet, "/api/v1/domains/%2F", http.StatusNotFound}, // found by FuzzStatusHandler
		{http.MethodGet, "/api/v1/nothing", http.StatusNotFound},
		{http.MethodGet, "/api/v1/domains/a.test/extra", http.StatusNotFound},
		{http.MethodPost, "/api/v1/domains", http.StatusMethodNotAllowed},
		{http.MethodDelete, "/api/v1/domains/a.test", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.target, nil))
		var e map[string]string
		if rec.Code != tt.code || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] == "" {
			t.Errorf("%s %s: %d %q, want %d with a JSON error", tt.method, tt.target, rec.Code, rec.Body, tt.code)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("%s %s: Content-Type %q", tt.method, tt.target, ct)
		}
	}
}
