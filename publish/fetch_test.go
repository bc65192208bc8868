package publish

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testenv"
	"github.com/starttls-preload/starttls-preload/listgen"
)

func TestFetchInstallsAndReloadsOnlyOnChange(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 2))
	c := newClient(t, ts.url(), key.Public())

	res, err := c.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Reloaded || res.Serial != 10 || res.NotModified {
		t.Fatalf("first fetch: %+v", res)
	}
	pf, _ := os.ReadFile(c.opts.PostfixMap)
	ex, _ := os.ReadFile(c.opts.EximFile)
	if !strings.Contains(string(pf), "example.test") || !strings.Contains(string(ex), "example.test") {
		t.Fatalf("installed files lack example.test:\n%s\n%s", pf, ex)
	}

	before := c.installed(t)
	res, err = c.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.Changed || res.Reloaded || !res.NotModified {
		t.Fatalf("second fetch of the same list: %+v", res)
	}
	if c.reloads(t) != 1 {
		t.Errorf("reloads = %d, want 1", c.reloads(t))
	}
	assertSame(t, before, c.installed(t), "state.json")

	l := testList(11, 3)
	ts.add(t, l)
	res, err = c.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Changed || !res.Reloaded || res.Serial != 11 || res.NotModified {
		t.Fatalf("fetch of a new list: %+v", res)
	}
	if c.reloads(t) != 2 {
		t.Errorf("reloads = %d, want 2", c.reloads(t))
	}
}

// assertSame compares two snapshots of the client's files, ignoring the
// named base names (which may legitimately change).
func assertSame(t *testing.T, before, after map[string]string, ignore ...string) {
	t.Helper()
	skip := func(p string) bool {
		for _, i := range ignore {
			if filepath.Base(p) == i {
				return true
			}
		}
		return false
	}
	for p, b := range before {
		if skip(p) {
			continue
		}
		a, ok := after[p]
		if !ok {
			t.Errorf("%s was removed", p)
		} else if a != b {
			t.Errorf("%s changed", p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok && !skip(p) {
			t.Errorf("%s appeared", p)
		}
	}
}

// badServer serves one response for the list and another for its signature.
func badServer(t testing.TB, list, sig http.HandlerFunc) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/"+ListFile, list)
	mux.HandleFunc("/"+SigFile, sig)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/" + ListFile
}

func bytesHandler(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.Write(b) }
}

func TestFetchBadInputLeavesInstalledFilesAlone(t *testing.T) {
	key := newKey(t)
	good := snapshot(t, key, testList(10, 1))
	newer := snapshot(t, key, testList(11, 1))
	other := snapshot(t, newKey(t), testList(11, 1))
	older := snapshot(t, key, testList(9, 1))
	expiredList := testList(11, 1)
	expiredList.Expires = t0.Add(-time.Minute)
	expired := snapshot(t, key, expiredList)
	testingOnly := testList(11, 0)
	testingOnly.Policies["example.test"] = listgen.Policy{Mode: listgen.ModeTesting, MXs: []string{"mx1.example.test"}}
	empty := snapshot(t, key, testingOnly)
	flipped := append([]byte(nil), newer.List...)
	flipped[len(flipped)/2] ^= 0x01

	tests := []struct {
		name      string
		list, sig http.HandlerFunc
		opts      func(*FetchOptions)
		want      error
	}{
		{name: "wrong key", list: bytesHandler(other.List), sig: bytesHandler(other.Sig), want: ErrBadSignature},
		{name: "one flipped byte", list: bytesHandler(flipped), sig: bytesHandler(newer.Sig), want: ErrBadSignature},
		{name: "signature of another list", list: bytesHandler(newer.List), sig: bytesHandler(good.Sig), want: ErrBadSignature},
		{name: "truncated download", list: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(newer.List)))
			w.Write(newer.List[:len(newer.List)/2])
		}, sig: bytesHandler(newer.Sig), want: ErrDownload},
		{name: "truncated without length", list: bytesHandler(newer.List[:len(newer.List)-3]), sig: bytesHandler(newer.Sig), want: ErrBadSignature},
		{name: "oversized body", list: bytesHandler(newer.List), sig: bytesHandler(newer.Sig),
			opts: func(o *FetchOptions) { o.MaxSize = int64(len(newer.List) - 1) }, want: ErrTooLarge},
		{name: "oversized body, chunked", list: func(w http.ResponseWriter, r *http.Request) {
			for range 10 {
				w.Write(newer.List)
				w.(http.Flusher).Flush()
			}
		}, sig: bytesHandler(newer.Sig), opts: func(o *FetchOptions) { o.MaxSize = int64(len(newer.List) * 3) }, want: ErrTooLarge},
		{name: "oversized signature", list: bytesHandler(newer.List), sig: bytesHandler([]byte(strings.Repeat("A", maxSigSize+1))), want: ErrTooLarge},
		{name: "html error page with status 200", list: bytesHandler([]byte("<!DOCTYPE html>\n<html><body>Service temporarily unavailable</body></html>")),
			sig: bytesHandler([]byte("<html></html>")), want: ErrNotAList},
		{name: "status 500", list: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "oops", 500) }, sig: bytesHandler(newer.Sig), want: ErrDownload},
		{name: "signature missing", list: bytesHandler(newer.List), sig: http.NotFound, want: ErrDownload},
		{name: "slow server that never finishes", list: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(newer.List)))
			w.Write(newer.List[:100])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}, sig: bytesHandler(newer.Sig), opts: func(o *FetchOptions) { o.Timeout = 200 * time.Millisecond }, want: ErrDownload},
		{name: "server that never answers", list: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			sig: bytesHandler(newer.Sig), opts: func(o *FetchOptions) { o.Timeout = 200 * time.Millisecond }, want: ErrDownload},
		{name: "older serial", list: bytesHandler(older.List), sig: bytesHandler(older.Sig), want: ErrRollback},
		{name: "same serial, other content", list: bytesHandler(snapshot(t, key, testList(10, 2)).List),
			sig: bytesHandler(snapshot(t, key, testList(10, 2)).Sig), want: ErrSameSerial},
		{name: "expired list", list: bytesHandler(expired.List), sig: bytesHandler(expired.Sig), want: ErrExpired},
		{name: "list that renders to nothing", list: bytesHandler(empty.List), sig: bytesHandler(empty.Sig), want: ErrEmptyList},
		{name: "postmap fails", list: bytesHandler(newer.List), sig: bytesHandler(newer.Sig),
			opts: func(o *FetchOptions) { o.Postmap, o.PostmapCommand = "hash", []string{"false"} }, want: ErrPostmap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, key)
			if err := ts.archive.Add(context.Background(), good); err != nil {
				t.Fatal(err)
			}
			c := newClient(t, ts.url(), key.Public())
			if _, err := c.fetch(t); err != nil {
				t.Fatal(err)
			}
			before := c.installed(t)
			c.opts.URL = badServer(t, tt.list, tt.sig)
			if tt.opts != nil {
				tt.opts(&c.opts)
			}
			res, err := c.fetch(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if res != nil && res.Changed {
				t.Errorf("result says files changed: %+v", res)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			assertSame(t, before, c.installed(t))
		})
	}
}

func TestFetchUnusableStateDir(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	before := c.installed(t)
	ts.add(t, testList(11, 1))

	notDir := filepath.Join(c.dir, "not-a-dir")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	before[notDir] = c.installed(t)[notDir]
	c.opts.StateDir = filepath.Join(notDir, "state")
	if _, err := c.fetch(t); !errors.Is(err, ErrStateDir) {
		t.Fatalf("state dir under a file: err = %v, want ErrStateDir", err)
	}
	assertSame(t, before, c.installed(t))

	// A state file that is not ours.
	c.opts.StateDir = filepath.Join(c.dir, "state")
	if err := os.WriteFile(filepath.Join(c.opts.StateDir, stateFile), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	before = c.installed(t)
	if _, err := c.fetch(t); !errors.Is(err, ErrStateDir) {
		t.Fatalf("corrupt state: err = %v, want ErrStateDir", err)
	}
	assertSame(t, before, c.installed(t))
}

func TestFetchLock(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	os.MkdirAll(c.opts.StateDir, 0o700)
	unlock, err := lockFile(filepath.Join(c.opts.StateDir, lockName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.fetch(t); !errors.Is(err, ErrLocked) {
		t.Fatalf("err = %v, want ErrLocked", err)
	}
	if _, err := os.Stat(c.opts.PostfixMap); !os.IsNotExist(err) {
		t.Errorf("map written while another run held the lock")
	}
	unlock()
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
}

func TestFetchExpiryWithdrawsAndNewListRestores(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	enforced, _ := os.ReadFile(c.opts.PostfixMap)

	// A week later the server still serves serial 10 (304).
	now := t0.Add(8 * 24 * time.Hour)
	c.opts.Now = func() time.Time { return now }
	res, err := c.fetch(t)
	if !errors.Is(err, ErrExpired) {
		t.Fatalf("err = %v, want ErrExpired", err)
	}
	if !res.Withdrawn || !res.Changed || !res.Reloaded {
		t.Fatalf("result = %+v, want withdrawn, changed, reloaded", res)
	}
	for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
		b, _ := os.ReadFile(p)
		if entries(b) != 0 || !strings.Contains(string(b), "expired") {
			t.Errorf("%s after expiry:\n%s", p, b)
		}
	}
	// Every further run says so again, without rewriting or reloading.
	before := c.installed(t)
	res, err = c.fetch(t)
	if !errors.Is(err, ErrExpired) || res.Changed || res.Reloaded {
		t.Fatalf("second run after expiry: %+v, %v", res, err)
	}
	assertSame(t, before, c.installed(t), "state.json")

	// A server that is down does not hide the expiry either.
	c.opts.URL = "http://127.0.0.1:1/" + ListFile
	if _, err := c.fetch(t); !errors.Is(err, ErrExpired) || !errors.Is(err, ErrDownload) {
		t.Fatalf("server down after expiry: %v", err)
	}

	// A newer valid list restores enforcement.
	l := testList(11, 1)
	l.Timestamp, l.Expires = now.Add(-time.Hour), now.Add(7*24*time.Hour)
	ts.add(t, l)
	c.opts.URL = ts.url()
	res, err = c.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	if res.Withdrawn || !res.Changed || res.Serial != 11 {
		t.Fatalf("after a new list: %+v", res)
	}
	restored, _ := os.ReadFile(c.opts.PostfixMap)
	if entries(restored) != entries(enforced) {
		t.Errorf("restored map has %d entries, want %d", entries(restored), entries(enforced))
	}
}

func TestFetchExpiredDownloadWithNothingInstalled(t *testing.T) {
	key := newKey(t)
	l := testList(10, 1)
	l.Expires = t0.Add(-time.Second)
	ts := newTestServer(t, key, l)
	c := newClient(t, ts.url(), key.Public())
	res, err := c.fetch(t)
	if !errors.Is(err, ErrExpired) || res == nil || !res.Withdrawn {
		t.Fatalf("res %+v err %v", res, err)
	}
	b, err := os.ReadFile(c.opts.PostfixMap)
	if err != nil || entries(b) != 0 {
		t.Fatalf("map: %q, %v", b, err)
	}
}

func TestFetchRepairsRemovedFileOn304(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(c.opts.PostfixMap)
	os.Remove(c.opts.PostfixMap)
	res, err := c.fetch(t)
	if err != nil {
		t.Fatal(err)
	}
	if !res.NotModified || !res.Changed || !res.Reloaded {
		t.Fatalf("res = %+v", res)
	}
	if got, _ := os.ReadFile(c.opts.PostfixMap); string(got) != string(want) {
		t.Errorf("map not restored")
	}
	// Changing an option re-renders without a download.
	c.opts.EarlyAdopter = true
	if res, err = c.fetch(t); err != nil || !res.NotModified {
		t.Fatalf("res = %+v, err %v", res, err)
	}
}

func TestFetchReloadFailureIsRetried(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	good := c.opts.Reload
	c.opts.Reload = "echo cannot reload >&2; exit 3"
	res, err := c.fetch(t)
	if !errors.Is(err, ErrReload) || !strings.Contains(err.Error(), "cannot reload") {
		t.Fatalf("err = %v, want ErrReload with the command's output", err)
	}
	if !res.Changed {
		t.Fatalf("res = %+v", res)
	}
	c.opts.Reload = good
	res, err = c.fetch(t)
	if err != nil || !res.Reloaded || res.Changed {
		t.Fatalf("retry: res = %+v, err = %v", res, err)
	}
	if res, _ = c.fetch(t); res.Reloaded {
		t.Fatalf("reloaded again: %+v", res)
	}
}

// Every table type the client compiles is built by the real postmap and
// answers for a listed domain.
func TestFetchPostmap(t *testing.T) {
	postmap := testenv.LookPath(t, "postmap")
	for _, typ := range []string{"hash", "btree", "lmdb", "cdb"} {
		t.Run(typ, func(t *testing.T) {
			key := newKey(t)
			ts := newTestServer(t, key, testList(10, 5))
			c := newClient(t, ts.url(), key.Public())
			cf := t.TempDir()
			if err := os.WriteFile(filepath.Join(cf, "main.cf"), []byte("myhostname = mta.lab.test\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			backdate(t, filepath.Join(cf, "main.cf"))
			c.opts.Postmap = typ
			c.opts.PostmapCommand = []string{postmap, "-c", cf}
			res, err := c.fetch(t)
			if err != nil {
				t.Fatalf("%v (for lmdb and cdb, scripts/test-env.sh installs postfix-lmdb and postfix-cdb)", err)
			}
			if len(res.Files) != 3 {
				t.Errorf("files = %v, want map, compiled map, exim file", res.Files)
			}
			// The compiled table answers for example.test.
			out, err := runCmd(postmap, "-c", cf, "-q", "example.test", typ+":"+c.opts.PostfixMap)
			if err != nil || !strings.Contains(out, "secure") {
				t.Fatalf("postmap -q: %q, %v", out, err)
			}
			// No temporary file is left beside the map.
			ents, _ := os.ReadDir(filepath.Dir(c.opts.PostfixMap))
			if len(ents) != 2 {
				t.Errorf("files beside the map: %v", ents)
			}
			// The compiled table is checked too: removing it triggers a rebuild.
			compiled := c.opts.PostfixMap + postmapSuffix[typ]
			os.Remove(compiled)
			if res, err = c.fetch(t); err != nil || !res.Changed {
				t.Fatalf("res %+v err %v", res, err)
			}
			if _, err := os.Stat(compiled); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFetchJitterHonoursContext(t *testing.T) {
	key := newKey(t)
	c := newClient(t, "http://127.0.0.1:1/"+ListFile, key.Public())
	c.opts.Jitter = time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fetch(ctx, c.opts); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}

func TestFetchOptionErrors(t *testing.T) {
	key := newKey(t)
	base := newClient(t, "http://127.0.0.1:1/x", key.Public()).opts
	tests := map[string]func(*FetchOptions){
		"no url":           func(o *FetchOptions) { o.URL = "" },
		"no key":           func(o *FetchOptions) { o.PublicKeys = nil },
		"too many keys":    func(o *FetchOptions) { o.PublicKeys = slices.Repeat(o.PublicKeys, listgen.MaxKeys+1) },
		"no state dir":     func(o *FetchOptions) { o.StateDir = "" },
		"nothing to do":    func(o *FetchOptions) { o.PostfixMap, o.EximFile = "", "" },
		"bad postmap type": func(o *FetchOptions) { o.Postmap = "regexp" },
		"postmap, no map":  func(o *FetchOptions) { o.PostfixMap, o.Postmap = "", "hash" },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			o := base
			f(&o)
			if _, err := Fetch(context.Background(), o); err == nil || !strings.HasPrefix(err.Error(), "publish: ") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestFetchDamagedKeptCopyIsReplaced(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(c.opts.PostfixMap)
	kept := filepath.Join(c.opts.StateDir, ListFile)
	b, _ := os.ReadFile(kept)
	b[10] ^= 1
	os.WriteFile(kept, b, 0o600)
	os.Remove(c.opts.PostfixMap)
	// The server answers 304 and the kept copy no longer verifies.
	if _, err := c.fetch(t); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("err = %v, want ErrBadSignature for the kept copy", err)
	}
	// The next run downloads the list again and repairs everything.
	res, err := c.fetch(t)
	if err != nil || !res.Changed {
		t.Fatalf("res %+v, err %v", res, err)
	}
	if got, _ := os.ReadFile(c.opts.PostfixMap); string(got) != string(want) {
		t.Error("map not restored")
	}
	if res, err = c.fetch(t); err != nil || !res.NotModified || res.Changed {
		t.Fatalf("afterwards: res %+v, err %v", res, err)
	}
}

// A young list has only testing entries: the client installs it (enforcing
// nothing) and says so; once a list enforced something, a list that
// enforces nothing is refused; after the operator clears the state, and
// after a withdrawal, it is accepted again.
func TestFetchListThatEnforcesNothing(t *testing.T) {
	key := newKey(t)
	testingOnly := testList(10, 0)
	testingOnly.Policies["example.test"] = listgen.Policy{Mode: listgen.ModeTesting, MXs: []string{"mx1.example.test"}}
	ts := newTestServer(t, key, testingOnly)
	c := newClient(t, ts.url(), key.Public())

	res, err := c.fetch(t)
	if err != nil {
		t.Fatalf("a list with only testing entries was refused: %v", err)
	}
	if !res.Changed || res.Serial != 10 {
		t.Fatalf("first fetch: %+v", res)
	}
	pf, _ := os.ReadFile(c.opts.PostfixMap)
	if hasEntry(pf) {
		t.Fatalf("testing entries were enforced without --early-adopter:\n%s", pf)
	}

	ts.add(t, testList(11, 2))
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	pf, _ = os.ReadFile(c.opts.PostfixMap)
	if !hasEntry(pf) {
		t.Fatalf("serial 11 installed no entry:\n%s", pf)
	}

	nothing := testList(12, 0)
	nothing.Policies["example.test"] = listgen.Policy{Mode: listgen.ModeTesting, MXs: []string{"mx1.example.test"}}
	ts.add(t, nothing)
	before := c.installed(t)
	_, err = c.fetch(t)
	if !errors.Is(err, ErrEmptyList) {
		t.Fatalf("err = %v, want ErrEmptyList", err)
	}
	if !strings.Contains(err.Error(), stateFile) {
		t.Errorf("the message does not say how to accept the list: %v", err)
	}
	assertSame(t, before, c.installed(t))

	if err := os.Remove(filepath.Join(c.opts.StateDir, stateFile)); err != nil {
		t.Fatal(err)
	}
	res, err = c.fetch(t)
	if err != nil || res.Serial != 12 {
		t.Fatalf("after clearing the state: %+v, %v", res, err)
	}
}

// TestFetchKeyRotation: a host that pins the current and the next key
// installs lists signed by either, and says which key signed; the key that
// verified is named in the result; a list signed by a key it does not pin
// is refused and the installed files stay.
func TestFetchKeyRotation(t *testing.T) {
	current, next, stranger := newKey(t), newKey(t), newKey(t)
	ts := newTestServer(t, current, testList(10, 1))
	c := newClient(t, ts.url(), current.Public())
	c.opts.PublicKeys = []crypto.PublicKey{current.Public(), next.Public()}
	fp := listgen.Fingerprint
	steps := []struct {
		name   string
		signer crypto.Signer // signs the next list; nil: no new list
		serial int64
		keys   []crypto.PublicKey // pinned keys for this run, if changed
		want   error
		signed crypto.Signer // SignedBy of the result, nil: none
	}{
		{name: "signed by the current key", signed: current, serial: 10},
		{name: "nothing new", serial: 10},
		{name: "the service switched to the next key", signer: next, serial: 11, signed: next},
		{name: "the old key dropped on the host", signer: next, serial: 12, keys: []crypto.PublicKey{next.Public()}, signed: next},
		{name: "a list by the old key is now refused", signer: current, serial: 13, want: ErrBadSignature},
		{name: "a list by a stranger is refused", signer: stranger, serial: 14, want: ErrBadSignature},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.keys != nil {
				c.opts.PublicKeys = s.keys
			}
			if s.signer != nil {
				ts.key = s.signer
				ts.add(t, testList(s.serial, 1))
			}
			before, _ := os.ReadFile(c.opts.PostfixMap)
			res, err := c.fetch(t)
			if s.want != nil {
				if !errors.Is(err, s.want) {
					t.Fatalf("err = %v, want %v", err, s.want)
				}
				if after, _ := os.ReadFile(c.opts.PostfixMap); !bytes.Equal(before, after) {
					t.Fatal("the installed map changed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Serial != s.serial {
				t.Fatalf("installed serial %d, want %d", res.Serial, s.serial)
			}
			switch {
			case s.signed == nil && res.SignedBy != nil:
				t.Fatalf("SignedBy = %s, want none", fp(res.SignedBy))
			case s.signed != nil && (res.SignedBy == nil || fp(res.SignedBy) != fp(s.signed.Public())):
				t.Fatalf("SignedBy = %v, want %s", res.SignedBy, fp(s.signed.Public()))
			}
			var st fetchState
			if err := json.Unmarshal(readOrFail(t, filepath.Join(c.opts.StateDir, stateFile)), &st); err != nil {
				t.Fatal(err)
			}
			if s.signed != nil && st.SignedBy != fp(s.signed.Public()) {
				t.Fatalf("state signed_by = %q, want %s", st.SignedBy, fp(s.signed.Public()))
			}
		})
	}
}

func readOrFail(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The key that signed the installed list is tried first.
func TestFetchTriesLastSignerFirst(t *testing.T) {
	a, b, c := newKey(t).Public(), newKey(t).Public(), newKey(t).Public()
	fp := listgen.Fingerprint
	tests := []struct {
		last string
		want []crypto.PublicKey
	}{
		{"", []crypto.PublicKey{a, b, c}},
		{fp(a), []crypto.PublicKey{a, b, c}},
		{fp(c), []crypto.PublicKey{c, a, b}},
		{fp(b), []crypto.PublicKey{b, a, c}},
		{fp(newKey(t).Public()), []crypto.PublicKey{a, b, c}},
	}
	for _, tt := range tests {
		f := &fetcher{o: FetchOptions{PublicKeys: []crypto.PublicKey{a, b, c}}, st: fetchState{SignedBy: tt.last}}
		got := f.keys()
		var gotFP, wantFP []string
		for i := range got {
			gotFP, wantFP = append(gotFP, fp(got[i])), append(wantFP, fp(tt.want[i]))
		}
		if !slices.Equal(gotFP, wantFP) {
			t.Errorf("last signer %q: keys %v, want %v", tt.last, gotFP, wantFP)
		}
	}
}

// TestFetchUnpinnedSignerIsNoAnchor: once the operator unpins the key that
// signed the installed list (e.g. a key known to be compromised), that list
// is no longer trusted: its serial does not block a list by a pinned key,
// and a server's "not modified" does not keep it in force without a word.
func TestFetchUnpinnedSignerIsNoAnchor(t *testing.T) {
	dropped, kept := newKey(t), newKey(t)
	fp := listgen.Fingerprint
	tests := []struct {
		name       string
		second     func(t *testing.T) string // URL of the second fetch
		wantErr    error
		wantSerial int64
	}{
		{name: "a list by the pinned key with a lower serial is installed", second: func(t *testing.T) string {
			return newTestServer(t, kept, testList(11, 2)).url()
		}, wantSerial: 11},
		{name: "a list by the pinned key with the same serial is installed", second: func(t *testing.T) string {
			return newTestServer(t, kept, testList(50, 2)).url()
		}, wantSerial: 50},
		{name: "the unchanged list by the unpinned key is refused, not taken as not modified, and enforcement withdrawn", wantErr: ErrBadSignature},
		{name: "no list to be had: the unpinned key's list is not kept in force", second: func(t *testing.T) string {
			return "http://127.0.0.1:1/" + ListFile
		}, wantErr: ErrDownload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := newTestServer(t, dropped, testList(50, 1))
			c := newClient(t, first.url(), dropped.Public())
			c.opts.PublicKeys = []crypto.PublicKey{dropped.Public(), kept.Public()}
			if res, err := c.fetch(t); err != nil || res.Serial != 50 {
				t.Fatalf("first fetch: %+v, %v", res, err)
			}
			c.opts.PublicKeys = []crypto.PublicKey{kept.Public()}
			if tt.second != nil {
				c.opts.URL = tt.second(t)
			}
			res, err := c.fetch(t)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || errors.Is(err, ErrExpired) || res == nil || !res.Withdrawn {
					t.Fatalf("second fetch: %+v, %v; want %v and enforcement withdrawn", res, err, tt.wantErr)
				}
				for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
					if b := readOrFail(t, p); entries(b) != 0 || !strings.Contains(string(b), "no longer pinned") {
						t.Errorf("%s after the signer was unpinned:\n%s", p, b)
					}
				}
				// Every further run says so again, without rewriting anything.
				before := c.installed(t)
				if res, err := c.fetch(t); !errors.Is(err, tt.wantErr) || res == nil || res.Changed {
					t.Fatalf("third fetch: %+v, %v", res, err)
				}
				assertSame(t, before, c.installed(t), "state.json")
				// A list by the pinned key restores enforcement.
				c.opts.URL = newTestServer(t, kept, testList(12, 2)).url()
				if res, err := c.fetch(t); err != nil || res.Withdrawn || res.Serial != 12 {
					t.Fatalf("after a list by the pinned key: %+v, %v", res, err)
				}
				return
			}
			if err != nil || res.Serial != tt.wantSerial || res.SignedBy == nil || fp(res.SignedBy) != fp(kept.Public()) {
				t.Fatalf("second fetch: %+v, %v; want serial %d by the pinned key", res, err, tt.wantSerial)
			}
			var st fetchState
			if err := json.Unmarshal(readOrFail(t, filepath.Join(c.opts.StateDir, stateFile)), &st); err != nil {
				t.Fatal(err)
			}
			if st.Serial != tt.wantSerial || st.SignedBy != fp(kept.Public()) {
				t.Fatalf("state serial %d signed_by %s, want %d by %s", st.Serial, st.SignedBy, tt.wantSerial, fp(kept.Public()))
			}
			// The anchor is the pinned key's list now: going back is refused again.
			c.opts.URL = newTestServer(t, kept, testList(tt.wantSerial-1, 2)).url()
			if _, err := c.fetch(t); !errors.Is(err, ErrRollback) {
				t.Fatalf("third fetch: %v, want %v", err, ErrRollback)
			}
		})
	}
}
