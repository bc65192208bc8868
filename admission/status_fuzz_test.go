package admission

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
)

// FuzzStatusHandler sends the status API arbitrary query strings and
// domain names: every answer is 200, 400 or 404 with a JSON body, the
// listing is a JSON array of at most maxPage entries, and no contact is
// ever shown.
func FuzzStatusHandler(f *testing.F) {
	st := memstore.New()
	for _, name := range []string{"a.test", "b.test", "xn--bcher-kva.test"} {
		if err := st.AddDomain(context.Background(), store.Domain{Name: name, State: Validating,
			Contact: "secret-contact@" + name, MXPatterns: []string{"mx." + name}, NextCheck: t0, CreatedAt: t0}); err != nil {
			f.Fatal(err)
		}
	}
	h := NewStatusHandler(st, DefaultRules())
	f.Add("limit=1", "a.test")
	f.Add("after=a.test&limit=2", "A.TEST.")
	f.Add("limit=-1", " b.test ")
	f.Add("limit=99999999999999999999", "absent.test")
	f.Add("after=%ff%00&limit=0x10", "%00")
	f.Add("limit=1&limit=2&after=", "..")
	f.Fuzz(func(t *testing.T, query, domain string) {
		for _, path := range []string{"/api/v1/domains", "/api/v1/domains/" + url.PathEscape(domain)} {
			u, err := url.Parse(path + "?" + query)
			if err != nil || u.Path != path && u.EscapedPath() != path {
				continue
			}
			if path != "/api/v1/domains" && (domain == "." || domain == ".." || domain == "") {
				continue // the mux redirects or lists; not a domain lookup
			}
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.URL = u
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			switch rec.Code {
			case http.StatusOK, http.StatusBadRequest, http.StatusNotFound:
			default:
				t.Fatalf("GET %s: status %d", u, rec.Code)
			}
			body := rec.Body.Bytes()
			if !json.Valid(body) {
				t.Fatalf("GET %s: body is not JSON: %q", u, body)
			}
			if strings.Contains(string(body), "secret-contact") {
				t.Fatalf("GET %s: shows a contact: %s", u, body)
			}
			if rec.Code == http.StatusOK && path == "/api/v1/domains" {
				var page []json.RawMessage
				if err := json.Unmarshal(body, &page); err != nil || page == nil || len(page) > maxPage {
					t.Fatalf("GET %s: listing %s (%v)", u, body, err)
				}
			}
		}
	})
}
