package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func do(t *testing.T, h http.Handler, method, path string, hdr ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandlerServesFilesWithValidators(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	s9 := ts.add(t, testList(9, 1))
	s10 := ts.add(t, testList(10, 50))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)

	tests := []struct {
		path, cache string
		want        []byte
		status      int
	}{
		{"/policy-list.json", cacheCurrent, s10.List, 200},
		{"/policy-list.json.sig", cacheCurrent, s10.Sig, 200},
		{"/policy-list.json.sshsig", cacheCurrent, s10.SSHSig, 200},
		{"/v/9/policy-list.json", cacheImmutable, s9.List, 200},
		{"/v/9/policy-list.json.sig", cacheImmutable, s9.Sig, 200},
		{"/v/10/policy-list.json.sshsig", cacheImmutable, s10.SSHSig, 200},
		{"/pubkey.pem", cacheKey, ts.pubPEM, 200},
		{"/allowed_signers", cacheKey, []byte(ts.signers), 200},
		{"/v/8/policy-list.json", "", nil, 404},
		{"/v/x/policy-list.json", "", nil, 404},
		{"/v/9/other", "", nil, 404},
		{"/nothing", "", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := do(t, h, "GET", tt.path)
			if r.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", r.StatusCode, tt.status)
			}
			if tt.status != 200 {
				return
			}
			if b := body(t, r); !bytes.Equal(b, tt.want) {
				t.Errorf("body differs")
			}
			if got := r.Header.Get("Cache-Control"); got != tt.cache {
				t.Errorf("Cache-Control %q, want %q", got, tt.cache)
			}
			etag := r.Header.Get("ETag")
			lm := r.Header.Get("Last-Modified")
			if !strings.HasPrefix(etag, `"`) || lm == "" {
				t.Fatalf("ETag %q Last-Modified %q", etag, lm)
			}
			if r := do(t, h, "GET", tt.path, "If-None-Match", etag); r.StatusCode != 304 || len(body(t, r)) != 0 {
				t.Errorf("If-None-Match: status %d", r.StatusCode)
			}
			if r := do(t, h, "GET", tt.path, "If-None-Match", `"other"`); r.StatusCode != 200 {
				t.Errorf("If-None-Match other: status %d", r.StatusCode)
			}
			if r := do(t, h, "GET", tt.path, "If-Modified-Since", lm); r.StatusCode != 304 {
				t.Errorf("If-Modified-Since: status %d", r.StatusCode)
			}
			r = do(t, h, "HEAD", tt.path)
			if r.StatusCode != 200 || len(body(t, r)) != 0 || r.Header.Get("ETag") != etag {
				t.Errorf("HEAD: status %d, ETag %q", r.StatusCode, r.Header.Get("ETag"))
			}
		})
	}
	if r := do(t, h, "POST", "/policy-list.json"); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", r.StatusCode)
	}
}

func TestHandlerGzip(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	s := ts.add(t, testList(10, 200))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)

	plain := do(t, h, "GET", "/policy-list.json")
	r := do(t, h, "GET", "/policy-list.json", "Accept-Encoding", "br, gzip;q=0.5")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("headers %v", r.Header)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	if !bytes.Equal(b, s.List) {
		t.Fatal("gunzipped body differs")
	}
	etag := r.Header.Get("ETag")
	if etag == plain.Header.Get("ETag") {
		t.Error("gzip and identity share an ETag")
	}
	if r := do(t, h, "GET", "/policy-list.json", "Accept-Encoding", "gzip", "If-None-Match", etag); r.StatusCode != 304 {
		t.Errorf("conditional gzip GET: %d", r.StatusCode)
	}
	if r := do(t, h, "GET", "/policy-list.json", "Accept-Encoding", "gzip;q=0, identity"); r.Header.Get("Content-Encoding") != "" {
		t.Error("gzip sent although q=0")
	}
}

func TestHandlerRendered(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	for _, p := range []string{"/" + PostfixFile, "/" + EximFile} {
		r := do(t, h, "GET", p)
		if b := body(t, r); r.StatusCode != 200 || !bytes.Contains(b, []byte("example.test")) {
			t.Errorf("%s: %d\n%s", p, r.StatusCode, b)
		}
	}
}

func TestHandlerNothingPublished(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	if r := do(t, h, "GET", "/policy-list.json"); r.StatusCode != 404 {
		t.Errorf("status %d", r.StatusCode)
	}
	if r := do(t, h, "GET", "/pubkey.pem"); r.StatusCode != 200 {
		t.Errorf("status %d", r.StatusCode)
	}
}

func TestHandlerSeesNewList(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	etag := do(t, h, "GET", "/policy-list.json").Header.Get("ETag")
	// Another process (here another Archive on the same directory) adds a list.
	other, err := OpenArchive(ts.archive.Dir())
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot(t, key, testList(11, 1))
	if err := other.Add(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	r := do(t, h, "GET", "/policy-list.json", "If-None-Match", etag)
	if r.StatusCode != 200 || !bytes.Equal(body(t, r), s.List) {
		t.Fatalf("status %d, want the new list", r.StatusCode)
	}
}

func TestArchiveAdd(t *testing.T) {
	key := newKey(t)
	ctx := context.Background()
	a, err := OpenArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Current(ctx); err != ErrNotFound {
		t.Fatalf("empty archive: %v", err)
	}
	s10 := snapshot(t, key, testList(10, 1))
	if err := a.Add(ctx, s10); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{10, 9} {
		if err := a.Add(ctx, snapshot(t, key, testList(n, 2))); !errors.Is(err, ErrSerialNotNewer) {
			t.Errorf("serial %d: %v", n, err)
		}
	}
	if err := a.Add(ctx, &Snapshot{Serial: 12}); !errors.Is(err, ErrBadSnapshot) {
		t.Errorf("empty snapshot: %v", err)
	}
	// A leftover directory of an interrupted Add is replaced.
	orphan := filepath.Join(a.Dir(), "v", "11")
	os.MkdirAll(orphan, 0o755)
	os.WriteFile(filepath.Join(orphan, ListFile), []byte("partial"), 0o644)
	if got, _ := a.Serials(ctx); len(got) != 1 {
		t.Errorf("serials with an orphan: %v", got)
	}
	if _, err := a.BySerial(ctx, 11); !errors.Is(err, ErrNotFound) {
		t.Errorf("orphan served: %v", err)
	}
	s11 := snapshot(t, key, testList(11, 1))
	s11.SSHSig = nil
	if err := a.Add(ctx, s11); err != nil {
		t.Fatal(err)
	}
	cur, err := a.Current(ctx)
	if err != nil || cur.Serial != 11 || !bytes.Equal(cur.List, s11.List) || len(cur.SSHSig) != 0 {
		t.Fatalf("current: %+v %v", cur, err)
	}
	old, err := a.BySerial(ctx, 10)
	if err != nil || !bytes.Equal(old.Sig, s10.Sig) || !old.Published.Equal(s10.Published) {
		t.Fatalf("by serial: %+v %v", old, err)
	}
	if got, _ := a.Serials(ctx); len(got) != 2 || got[0] != 10 || got[1] != 11 {
		t.Errorf("serials %v", got)
	}
	// No temporary directory is left behind.
	ents, _ := os.ReadDir(filepath.Join(a.Dir(), "v"))
	if len(ents) != 2 {
		t.Errorf("v/ holds %v", ents)
	}
}

func TestExportMatchesHandler(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(9, 1), testList(10, 3))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	dir := t.TempDir()
	ctx := context.Background()
	if err := Export(ctx, ts.archive, dir, ts.pubPEM, ts.signers); err != nil {
		t.Fatal(err)
	}
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, _ := filepath.Rel(dir, p)
		file, _ := os.ReadFile(p)
		r := do(t, h, "GET", "/"+filepath.ToSlash(rel))
		if b := body(t, r); r.StatusCode != 200 || !bytes.Equal(b, file) {
			t.Errorf("%s: exported file differs from what the handler serves (status %d)", rel, r.StatusCode)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 4+3+3+3 {
		t.Errorf("exported %d files", n)
	}
	// Again, after a new list: v/ grows, the top moves on.
	ts.add(t, testList(11, 1))
	if err := Export(ctx, ts.archive, dir, ts.pubPEM, ts.signers); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "v", "11", SigFile)); err != nil {
		t.Fatal(err)
	}
	// A published file that changed under v/ is an error, not overwritten.
	os.WriteFile(filepath.Join(dir, "v", "9", ListFile), []byte("tampered"), 0o644)
	if err := Export(ctx, ts.archive, dir, ts.pubPEM, ts.signers); !errors.Is(err, ErrExportConflict) {
		t.Fatalf("err = %v", err)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := map[string]bool{
		"":                      false,
		"gzip":                  true,
		"GZIP":                  true,
		"deflate, gzip":         true,
		"gzip;q=0":              false,
		"gzip; q=0.0":           false,
		"gzip;q=0.001":          true,
		"identity":              false,
		"*":                     true,
		"*;q=0":                 false,
		"gzip;q=0, *":           false,
		"br;q=1.0, x-gzip;q=.5": true,
	}
	for h, want := range tests {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

// FuzzAcceptsGzip: any Accept-Encoding is read without panicking, gzip is
// chosen only when the header names gzip or "*", and the coding names and
// parameters are read case-insensitively (RFC 9110 §12.5.3).
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.5, br", "x-gzip; q=1; foo=bar", ";;,,=q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := acceptsGzip(h)
		if got && !strings.Contains(strings.ToLower(h), "gzip") && !strings.Contains(h, "*") {
			t.Fatalf("acceptsGzip(%q) = true without gzip or *", h)
		}
		ascii := !strings.ContainsFunc(h, func(r rune) bool { return r >= 0x80 })
		if ascii && acceptsGzip(strings.ToUpper(h)) != got {
			t.Fatalf("acceptsGzip(%q) = %v, but not so in upper case", h, got)
		}
	})
}
