package publish

import (
	"bytes"
	"context"
	"crypto"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// t0 is the tests' clock.
var t0 = time.Date(2026, 11, 23, 8, 0, 0, 0, time.UTC)

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	k, err := listgen.GenerateKey("ecdsa-p256")
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// testList is a list valid from t0 for a week with enforce entries for
// example.test and n more domains.
func testList(serial int64, n int) *listgen.List {
	l := &listgen.List{
		Version:       listgen.FormatVersion,
		Serial:        serial,
		Timestamp:     t0.Add(-time.Hour),
		Expires:       t0.Add(7 * 24 * time.Hour),
		Author:        "starttls-preload tests",
		PolicyAliases: map[string]listgen.Policy{},
		Policies: map[string]listgen.Policy{
			"example.test": {Mode: listgen.ModeEnforce, MXs: []string{"mx1.example.test"}},
		},
	}
	for i := range n {
		d := fmt.Sprintf("d%07d.test", i)
		l.Policies[d] = listgen.Policy{Mode: listgen.ModeEnforce, MXs: []string{"mx." + d}}
	}
	return l
}

// snapshot marshals and signs l.
func snapshot(t testing.TB, key crypto.Signer, l *listgen.List) *Snapshot {
	t.Helper()
	b, err := listgen.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := listgen.SignBlob(key, b)
	if err != nil {
		t.Fatal(err)
	}
	ssh, err := listgen.SignSSH(key, b)
	if err != nil {
		t.Fatal(err)
	}
	return &Snapshot{Serial: l.Serial, List: b, Sig: sig, SSHSig: ssh, Published: t0.Add(-time.Hour)}
}

// testArchive is an archive holding the given lists, served by NewHandler.
type testServer struct {
	key     crypto.Signer
	archive *Archive
	srv     *httptest.Server
	pubPEM  []byte
	signers string
}

func newTestServer(t testing.TB, key crypto.Signer, lists ...*listgen.List) *testServer {
	t.Helper()
	a, err := OpenArchive(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{key: key, archive: a}
	for _, l := range lists {
		ts.add(t, l)
	}
	ts.pubPEM, err = listgen.MarshalPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ts.signers, err = listgen.AllowedSignersLine(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	ts.srv = httptest.NewServer(NewHandler(a, ts.pubPEM, ts.signers))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *testServer) add(t testing.TB, l *listgen.List) *Snapshot {
	t.Helper()
	s := snapshot(t, ts.key, l)
	if err := ts.archive.Add(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (ts *testServer) url() string { return ts.srv.URL + "/" + ListFile }

// client is a fetch set-up: a state dir and the two installed files.
type client struct {
	opts FetchOptions
	dir  string
}

func newClient(t testing.TB, url string, pub crypto.PublicKey) *client {
	t.Helper()
	dir := t.TempDir()
	return &client{dir: dir, opts: FetchOptions{
		URL:        url,
		PublicKeys: []crypto.PublicKey{pub},
		StateDir:   filepath.Join(dir, "state"),
		PostfixMap: filepath.Join(dir, "postfix", "starttls-policy"),
		EximFile:   filepath.Join(dir, "exim", "starttls-policy"),
		Reload:     "echo reload >> " + filepath.Join(dir, "reloads"),
		Now:        func() time.Time { return t0 },
	}}
}

func (c *client) fetch(t testing.TB) (*FetchResult, error) {
	t.Helper()
	for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
		if p != "" {
			os.MkdirAll(filepath.Dir(p), 0o755)
		}
	}
	return Fetch(context.Background(), c.opts)
}

func (c *client) reloads(t testing.TB) int {
	b, err := os.ReadFile(filepath.Join(c.dir, "reloads"))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("reload\n"))
}

// installed returns the bytes of every file under the client's directory
// except the state dir's lock, keyed by path.
func (c *client) installed(t testing.TB) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(c.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		st, _ := d.Info()
		m[p] = fmt.Sprintf("%s mtime=%d", b, st.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// entries counts the lines of a rendered file that are neither blank nor
// comments.
func entries(b []byte) int {
	n := 0
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			n++
		}
	}
	return n
}

// backdate sets the modification time of files a minute back.
func backdate(t testing.TB, files ...string) {
	t.Helper()
	past := time.Now().Add(-time.Minute)
	for _, f := range files {
		if err := os.Chtimes(f, past, past); err != nil {
			t.Fatal(err)
		}
	}
}
