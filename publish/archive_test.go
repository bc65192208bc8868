package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// A list by serial is served from its file: a request for its signature,
// a HEAD, a range or a conditional GET neither reads the whole list into
// memory nor hashes it. Measured as bytes allocated, which counts every
// read into memory whatever the garbage collector does afterwards.
func TestHandlerArchivedListStreamed(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	s10 := ts.add(t, testList(10, 60_000))
	ts.add(t, testList(11, 1))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	if len(s10.List) < 4<<20 {
		t.Fatalf("list of %d bytes is too small to tell", len(s10.List))
	}
	path := "/v/10/" + ListFile
	etag := do(t, h, "GET", path).Header.Get("ETag")
	requests := []struct {
		method, path string
		hdr          []string
		status       int
	}{
		{"GET", "/v/10/" + SigFile, nil, 200},
		{"GET", "/v/10/" + SSHSigFile, nil, 200},
		{"HEAD", path, nil, 200},
		{"GET", path, []string{"Range", "bytes=0-99"}, 206},
		{"GET", path, []string{"If-None-Match", etag}, 304},
		{"GET", path, []string{"Accept-Encoding", "gzip", "Range", "bytes=0-9"}, 206},
	}
	for _, rq := range requests { // warm the caches
		do(t, h, rq.method, rq.path, rq.hdr...)
	}
	const rounds = 5
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range rounds {
		for _, rq := range requests {
			r := do(t, h, rq.method, rq.path, rq.hdr...)
			if r.StatusCode != rq.status {
				t.Fatalf("%s %s %v: status %d, want %d", rq.method, rq.path, rq.hdr, r.StatusCode, rq.status)
			}
		}
	}
	runtime.ReadMemStats(&m1)
	perRequest := (m1.TotalAlloc - m0.TotalAlloc) / uint64(rounds*len(requests))
	if perRequest > 256<<10 {
		t.Errorf("%d bytes allocated per request for a list of %d bytes", perRequest, len(s10.List))
	}
}

// The ETag of a list by serial is that of the same bytes as the current
// list, and survives a new handler (it is the archive's, not the
// process's); an archive written before SHA256SUMS existed is served with
// the same validators, computed once.
func TestArchivedETags(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	s10 := ts.add(t, testList(10, 200))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	want := map[string]string{}
	for _, f := range []string{ListFile, SigFile, SSHSigFile} {
		cur := do(t, h, "GET", "/"+f).Header.Get("ETag")
		old := do(t, h, "GET", "/v/10/"+f).Header.Get("ETag")
		if cur == "" || cur != old {
			t.Errorf("%s: current ETag %s, by serial %s", f, cur, old)
		}
		want[f] = old
	}
	gz := do(t, h, "GET", "/v/10/"+ListFile, "Accept-Encoding", "gzip")
	if gz.Header.Get("Content-Encoding") != "gzip" || gz.Header.Get("ETag") == want[ListFile] {
		t.Fatalf("gzip answer: %v", gz.Header)
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(zr); !bytes.Equal(b, s10.List) {
		t.Error("gunzipped archived list differs")
	}
	want["gzip"] = gz.Header.Get("ETag")

	// The archive as an older version wrote it: no checksums, no gzip.
	vdir := filepath.Join(ts.archive.Dir(), "v", "10")
	for _, f := range []string{sumsFile, gzListFile} {
		if err := os.Remove(filepath.Join(vdir, f)); err != nil {
			t.Fatal(err)
		}
	}
	a, err := OpenArchive(ts.archive.Dir())
	if err != nil {
		t.Fatal(err)
	}
	h = NewHandler(a, ts.pubPEM, ts.signers)
	for _, f := range []string{ListFile, SigFile, SSHSigFile} {
		for range 2 {
			r := do(t, h, "GET", "/v/10/"+f)
			if got := r.Header.Get("ETag"); r.StatusCode != 200 || got != want[f] {
				t.Errorf("%s without %s: status %d, ETag %s, want %s", f, sumsFile, r.StatusCode, got, want[f])
			}
		}
	}
	r := do(t, h, "GET", "/v/10/"+ListFile, "Accept-Encoding", "gzip")
	if r.Header.Get("Content-Encoding") != "" || !bytes.Equal(body(t, r), s10.List) {
		t.Error("without a gzipped copy, the list is not sent as is")
	}
}

// A serial has one spelling, decimal without sign or leading zero; any
// other is not found (a cache never holds one list under two names).
func TestHandlerSerialSpelling(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(1, 1), testList(10, 1))
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	for _, s := range []string{"1", "10"} {
		if r := do(t, h, "GET", "/v/"+s+"/"+SigFile); r.StatusCode != 200 {
			t.Errorf("/v/%s/: status %d", s, r.StatusCode)
		}
	}
	for _, s := range []string{"+1", "01", "001", "1e0", "1.0", "0x1", "%2B1", "+10", "010", "1_0", "0", "-0", "-1", "%201", "1%20", "\u0661", "9223372036854775808"} {
		if r := do(t, h, "GET", "/v/"+s+"/"+SigFile); r.StatusCode != 404 {
			t.Errorf("/v/%s/: status %d, want 404", s, r.StatusCode)
		}
	}
}

// Add writes the checksums and the gzipped list with the list, all with
// the publication time, and nothing else.
func TestArchiveAddMetadata(t *testing.T) {
	key := newKey(t)
	a, err := OpenArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := snapshot(t, key, testList(3, 10))
	if err := a.Add(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	vdir := filepath.Join(a.Dir(), "v", "3")
	ents, _ := os.ReadDir(vdir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		fi, _ := e.Info()
		if !fi.ModTime().Equal(s.Published) {
			t.Errorf("%s: modified %v, want %v", e.Name(), fi.ModTime(), s.Published)
		}
	}
	if got := strings.Join(names, " "); got != "SHA256SUMS policy-list.json policy-list.json.gz policy-list.json.sig policy-list.json.sshsig" {
		t.Errorf("v/3 holds %s", got)
	}
	sums, err := os.ReadFile(filepath.Join(vdir, sumsFile))
	if err != nil {
		t.Fatal(err)
	}
	// sha256sum -c reads it.
	for _, line := range strings.Split(strings.TrimSuffix(string(sums), "\n"), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok || len(sum) != 64 || name == "" {
			t.Errorf("line %q", line)
		}
	}
	if !bytes.Contains(sums, []byte("  "+ListFile+"\n")) {
		t.Errorf("%s:\n%s", sumsFile, sums)
	}
}

// Export copies the files of every list by serial from the archive as they
// are, a list without an SSH signature included, and leaves identical
// files alone.
func TestExportStreamsArchivedFiles(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	s9 := snapshot(t, key, testList(9, 1))
	s9.SSHSig = nil
	if err := ts.archive.Add(context.Background(), s9); err != nil {
		t.Fatal(err)
	}
	ts.add(t, testList(10, 1))
	dir := t.TempDir()
	for range 2 {
		if err := Export(context.Background(), ts.archive, dir, ts.pubPEM, ts.signers); err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "v", "9"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != ListFile+" "+SigFile {
		t.Errorf("v/9 holds %s", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "v", "9", ListFile)); !bytes.Equal(b, s9.List) {
		t.Error("v/9 list differs")
	}
	// A file cut short is a conflict, like any other difference.
	p := filepath.Join(dir, "v", "9", SigFile)
	if err := os.WriteFile(p, s9.Sig[:len(s9.Sig)-1], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Export(context.Background(), ts.archive, dir, ts.pubPEM, ts.signers); !errors.Is(err, ErrExportConflict) {
		t.Errorf("err = %v", err)
	}
}

// Requests for lists by serial at once, some for an archive without
// SHA256SUMS (each file hashed once, by whichever request comes first),
// all get the file and the same ETag.
func TestHandlerArchivedConcurrent(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key)
	var snaps []*Snapshot
	for n := range int64(4) {
		snaps = append(snaps, ts.add(t, testList(n+1, 50)))
	}
	os.Remove(filepath.Join(ts.archive.Dir(), "v", "2", sumsFile))
	a, err := OpenArchive(ts.archive.Dir())
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(a, ts.pubPEM, ts.signers)
	want := map[string]string{}
	for _, s := range snaps {
		for _, f := range []string{ListFile, SigFile} {
			p := fmt.Sprintf("/v/%d/%s", s.Serial, f)
			want[p] = do(t, NewHandler(ts.archive, ts.pubPEM, ts.signers), "GET", p).Header.Get("ETag")
		}
	}
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			s := snaps[i%len(snaps)]
			for _, f := range []string{ListFile, SigFile} {
				p := fmt.Sprintf("/v/%d/%s", s.Serial, f)
				r := do(t, h, "GET", p)
				if got := r.Header.Get("ETag"); r.StatusCode != 200 || got != want[p] {
					t.Errorf("%s: status %d, ETag %s, want %s", p, r.StatusCode, got, want[p])
				}
			}
		})
	}
	wg.Wait()
}
