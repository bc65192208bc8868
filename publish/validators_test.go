package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
)

// mirror is a list server with its own clock: it sends Date from the
// clock, Last-Modified from when its list last changed (by that clock) and,
// if etags, an ETag; it answers conditional requests itself as a plain file
// server does (RFC 9110 §13.1.2, §13.1.3), so a client that sends a weak
// Last-Modified back gets 304 for a list replaced in the same second. It
// records the conditional headers it received.
type mirror struct {
	clock *testclock.Clock
	etags bool
	etag  string // the ETag to send, if etags ("" = one derived from the serial)

	mu       sync.Mutex
	snap     *Snapshot
	modified time.Time
	conds    []http.Header
}

func (m *mirror) set(s *Snapshot) {
	m.mu.Lock()
	m.snap, m.modified = s, m.clock.Now()
	m.mu.Unlock()
}

func (m *mirror) lastConds() http.Header {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conds[len(m.conds)-1]
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	s, mod := m.snap, m.modified
	if r.URL.Path == "/"+ListFile {
		m.conds = append(m.conds, http.Header{
			"If-None-Match":     r.Header.Values("If-None-Match"),
			"If-Modified-Since": r.Header.Values("If-Modified-Since"),
		})
	}
	m.mu.Unlock()
	h := w.Header()
	h.Set("Date", m.clock.Now().UTC().Format(http.TimeFormat))
	body := s.List
	if r.URL.Path == "/"+SigFile {
		body = s.Sig
	}
	etag := m.etag
	if etag == "" {
		etag = `"serial-` + string(rune('a'+s.Serial%26)) + `"`
	}
	if m.etags {
		h.Set("ETag", etag)
	}
	h.Set("Last-Modified", mod.UTC().Format(http.TimeFormat))
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if m.etags && inm == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else if ims, err := http.ParseTime(r.Header.Get("If-Modified-Since")); err == nil && !mod.Truncate(time.Second).After(ims) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Write(body)
}

// A weak validator is not a validator (RFC 9110 §8.8.2.2): a Last-Modified
// in the same second as the response's Date is not sent back, so a list
// replaced within that second is fetched; one at least a second older is;
// an ETag is preferred to it.
func TestFetchWeakLastModified(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name     string
		etags    bool
		age      time.Duration // Date minus the list's Last-Modified at the first fetch
		wantINM  bool
		wantIMS  bool
		sameList bool // the list does not change: a 304 is expected
	}{
		{name: "Last-Modified equals Date, list replaced within the second", age: 0},
		{name: "Last-Modified 0.8 s before Date in the same second, list replaced within it", age: 800 * time.Millisecond},
		{name: "Last-Modified 1 s before Date, list unchanged", age: time.Second, wantIMS: true, sameList: true},
		{name: "Last-Modified 1 s before Date, list replaced", age: time.Second, wantIMS: true},
		{name: "ETag preferred, list replaced within the second", etags: true, wantINM: true},
		{name: "ETag preferred, list unchanged", etags: true, age: time.Hour, wantINM: true, sameList: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := testclock.New(t0.Add(-10 * time.Minute).Truncate(time.Second).Add(100 * time.Millisecond))
			m := &mirror{clock: clock, etags: tt.etags}
			m.set(snapshot(t, key, testList(10, 1)))
			clock.Add(tt.age)
			srv := httptest.NewServer(m)
			t.Cleanup(srv.Close)
			c := newClient(t, srv.URL+"/"+ListFile, key.Public())
			if res, err := c.fetch(t); err != nil || res.Serial != 10 {
				t.Fatalf("first fetch: %+v, %v", res, err)
			}
			want := int64(10)
			if !tt.sameList {
				clock.Add(50 * time.Millisecond)
				m.set(snapshot(t, key, testList(11, 1)))
				want = 11
			}
			res, err := c.fetch(t)
			if err != nil || res.Serial != want || res.NotModified != tt.sameList {
				t.Fatalf("second fetch: %+v, %v; want serial %d", res, err, want)
			}
			got := m.lastConds()
			if (got.Get("If-None-Match") != "") != tt.wantINM || (got.Get("If-Modified-Since") != "") != tt.wantIMS {
				t.Errorf("second request's conditions %v; want If-None-Match %t, If-Modified-Since %t", got, tt.wantINM, tt.wantIMS)
			}
		})
	}
}

func TestValidETag(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{`"abc"`, true},
		{`W/"abc"`, true},
		{`""`, true},
		{`"` + strings.Repeat("a", maxValidator-2) + `"`, true},
		{`"` + strings.Repeat("a", maxValidator-1) + `"`, false},
		{`abc`, false},
		{`"abc`, false},
		{`"a"b"`, false},
		{`"a b"`, false},
		{"\"a\x01\"", false},
		{"\"a\x7f\"", false},
		{"\"é\"", false},
		{`w/"abc"`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := validETag(tt.in) == tt.in && tt.in != ""; got != tt.want {
			t.Errorf("validETag(%q) kept = %t, want %t", truncate(tt.in, 40), got, tt.want)
		}
	}
}

func readState(t *testing.T, c *client) (fetchState, []byte) {
	t.Helper()
	b := readOrFail(t, filepath.Join(c.opts.StateDir, stateFile))
	var st fetchState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st, b
}

// A 200 KiB ETag on the genuine list is not stored nor sent back; one
// already in the state (written by an older client) is dropped.
func TestFetchHugeETagIsNotStored(t *testing.T) {
	key := newKey(t)
	snap := snapshot(t, key, testList(10, 1))
	huge := `"` + strings.Repeat("x", 200<<10) + `"`
	clock := testclock.New(t0)
	m := &mirror{clock: clock, etags: true, etag: huge}
	m.set(snap)
	srv := httptest.NewUnstartedServer(m)
	srv.Config.MaxHeaderBytes = 1 << 20
	srv.Start()
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL+"/"+ListFile, key.Public())
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	st, b := readState(t, c)
	if st.ETag != "" || len(b) > 16<<10 {
		t.Fatalf("state keeps an ETag of %d bytes (state %d bytes)", len(st.ETag), len(b))
	}
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	if inm := m.lastConds().Get("If-None-Match"); inm != "" {
		t.Fatalf("sent If-None-Match of %d bytes", len(inm))
	}

	// A poisoned state from before is cleaned on reading.
	st.ETag, st.LastModified = huge, "Mon, 01 Jan 2024 00:00:00 GMT\x1b[2J"
	b, _ = json.Marshal(st)
	if err := os.WriteFile(filepath.Join(c.opts.StateDir, stateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	if got := m.lastConds(); got.Get("If-None-Match") != "" || got.Get("If-Modified-Since") != "" {
		t.Fatalf("poisoned validators sent back: %d and %d bytes", len(got.Get("If-None-Match")), len(got.Get("If-Modified-Since")))
	}
}

// Whatever state.json holds (too large, garbage, gone), an installed list
// past its expiry is withdrawn: the expiry is kept apart, from the signed
// list only.
func TestFetchExpiryWithdrawnWhateverTheStateFile(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name     string
		state    func(old []byte) []byte
		noRecord bool // expiry.json is gone too (a state written before it was kept)
	}{
		{"state over 1 MiB", func(old []byte) []byte {
			return append(bytes.TrimSuffix(bytes.TrimSpace(old), []byte("}")), []byte(`,"pad":"`+strings.Repeat("x", 2<<20)+`"}`)...)
		}, false},
		{name: "state over 1 MiB, no expiry record", state: func(old []byte) []byte {
			return append(bytes.TrimSuffix(bytes.TrimSpace(old), []byte("}")), []byte(`,"etag":"\"`+strings.Repeat("x", 2<<20)+`\""}`)...)
		}, noRecord: true},
		{"state garbage", func([]byte) []byte { return []byte("{garbage") }, false},
		{"state says valid for ever", func(old []byte) []byte {
			var st fetchState
			json.Unmarshal(old, &st)
			st.Expires = t0.AddDate(100, 0, 0)
			b, _ := json.Marshal(st)
			return b
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, key, testList(10, 1))
			c := newClient(t, ts.url(), key.Public())
			if _, err := c.fetch(t); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(c.opts.StateDir, stateFile)
			if err := os.WriteFile(p, tt.state(readOrFail(t, p)), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.noRecord {
				if err := os.Remove(filepath.Join(c.opts.StateDir, expiryFile)); err != nil {
					t.Fatal(err)
				}
			}
			now := t0.Add(8 * 24 * time.Hour)
			c.opts.Now = func() time.Time { return now }
			c.opts.URL = "http://127.0.0.1:1/" + ListFile // and the server is gone
			res, err := c.fetch(t)
			if !errors.Is(err, ErrExpired) || res == nil || !res.Withdrawn {
				t.Fatalf("res %+v, err %v; want enforcement withdrawn", res, err)
			}
			for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
				if b := readOrFail(t, p); entries(b) != 0 || !strings.Contains(string(b), "expired") {
					t.Errorf("%s:\n%s", p, b)
				}
			}
		})
	}
}
