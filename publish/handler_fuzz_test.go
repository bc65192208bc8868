package publish

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// FuzzHandler sends the list server arbitrary paths and conditional,
// range and encoding headers: it never panics, answers with one of the
// statuses a file server gives, and a full identity answer for the list
// is the signed list's bytes.
func FuzzHandler(f *testing.F) {
	key := newKey(f)
	ts := newTestServer(f, key, testList(10, 1), testList(11, 1))
	want := snapshot(f, key, testList(11, 1)).List
	h := NewHandler(ts.archive, ts.pubPEM, ts.signers)
	f.Add("/"+ListFile, "", "", "", "")
	f.Add("/v/10/"+SigFile, "bytes=0-10", "", "", "gzip")
	f.Add("/v/-1/"+ListFile, "bytes=5-1", `"x"`, "", "")
	f.Add("/"+SSHSigFile, "bytes=0-0,1-1,2-2", "*", "Mon, 02 Jan 2006 15:04:05 GMT", "x-gzip;q=0.5")
	f.Add("/v/99999999999999999999/"+ListFile, "", "", "garbage", "*")
	f.Add("/../etc/passwd", "", "", "", "")
	f.Add("/v/010/"+ListFile, "", "", "", "gzip")
	f.Add("/v/+11/"+SigFile, "bytes=-5", "", "", "")
	f.Fuzz(func(t *testing.T, path, rng, inm, ims, ae string) {
		u, err := url.Parse(path)
		if err != nil {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.URL = u
		for k, v := range map[string]string{"Range": rng, "If-None-Match": inm, "If-Modified-Since": ims, "Accept-Encoding": ae} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusPartialContent, http.StatusNotModified, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusRequestedRangeNotSatisfiable,
			http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		default:
			t.Fatalf("GET %q: status %d", path, rec.Code)
		}
		// A list by serial has one URL: /v/SERIAL/ in decimal, no sign, no leading zero.
		if serial, file, ok := strings.Cut(strings.TrimPrefix(u.Path, "/v/"), "/"); ok && strings.HasPrefix(u.Path, "/v/") &&
			(rec.Code == http.StatusOK || rec.Code == http.StatusPartialContent || rec.Code == http.StatusNotModified) {
			if n, err := strconv.ParseInt(serial, 10, 64); err != nil || strconv.FormatInt(n, 10) != serial || strings.Contains(file, "/") {
				t.Fatalf("GET %q: status %d for a path that is not /v/SERIAL/FILE", path, rec.Code)
			}
		}
		if rec.Code == http.StatusOK && u.Path == "/"+ListFile && rec.Header().Get("Content-Encoding") == "" &&
			!bytes.Equal(rec.Body.Bytes(), want) {
			t.Fatalf("GET %q: 200 with a body other than the list", path)
		}
	})
}
