package publish

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"strconv"
	"testing"
)

// roundTripper answers every request with a function of its URL.
type roundTripper func(*http.Request) *http.Response

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r), nil }

// FuzzFetchResponse feeds Fetch arbitrary server answers (list, signature,
// status): whatever they are, a list the pinned key did not sign is never
// installed and the installed files never change.
func FuzzFetchResponse(f *testing.F) {
	key := newKey(f)
	good := snapshot(f, key, testList(10, 1))
	newer := snapshot(f, key, testList(11, 1))
	f.Add(newer.List, newer.Sig, 200)
	f.Add(newer.List[:len(newer.List)/2], newer.Sig, 200)
	f.Add([]byte("<html>maintenance</html>"), []byte(""), 200)
	f.Add([]byte("{}"), []byte("AAAA"), 200)
	f.Add([]byte(""), []byte(""), 304)
	f.Add(good.List, good.Sig, 200)

	ts := newTestServer(f, key, testList(10, 1))
	c := newClient(f, ts.url(), key.Public())
	if _, err := c.fetch(f); err != nil {
		f.Fatal(err)
	}
	want := map[string][]byte{}
	for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
		want[p], _ = os.ReadFile(p)
	}
	f.Fuzz(func(t *testing.T, list, sig []byte, status int) {
		if bytes.Equal(list, newer.List) && bytes.Equal(sig, newer.Sig) {
			return // the one valid answer
		}
		o := c.opts
		o.Reload = ""
		o.MaxSize = 1 << 20
		o.Client = &http.Client{Transport: roundTripper(func(r *http.Request) *http.Response {
			b := list
			if bytes.HasSuffix([]byte(r.URL.Path), []byte(".sig")) {
				b = sig
			}
			return &http.Response{
				StatusCode: status, Status: strconv.Itoa(status), Request: r,
				Header:        http.Header{},
				Body:          io.NopCloser(bytes.NewReader(b)),
				ContentLength: int64(len(b)),
			}
		})}
		Fetch(context.Background(), o)
		for p, b := range want {
			if now, _ := os.ReadFile(p); !bytes.Equal(now, b) {
				t.Fatalf("%s changed", p)
			}
		}
	})
}
