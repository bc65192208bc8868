package publish

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoadState runs Fetch with an arbitrary state.json against a server
// with one signed list: the state file never makes Fetch panic, an
// unreadable one is reported as ErrStateDir with nothing installed, and
// whatever the state claims, the files Fetch installs are either the
// rendering of the signed list or a policy that enforces nothing.
func FuzzLoadState(f *testing.F) {
	key := newKey(f)
	ts := newTestServer(f, key, testList(10, 1))
	ref := newClient(f, ts.url(), key.Public())
	ref.opts.Reload = ""
	if _, err := ref.fetch(f); err != nil {
		f.Fatal(err)
	}
	want := map[string][]byte{}
	for _, p := range []string{ref.opts.PostfixMap, ref.opts.EximFile} {
		want[filepath.Base(filepath.Dir(p))], _ = os.ReadFile(p)
	}
	st, err := os.ReadFile(filepath.Join(ref.opts.StateDir, stateFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(st)
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"serial":99,"expires":"2020-01-01T00:00:00Z","etag":"\"x\""}`))
	f.Add([]byte(`{"serial":10,"list_sha256":"00","expires":"2030-01-01T00:00:00Z","withdrawn":true,"installed":{"/nonexistent":{"size":1,"mtime_ns":2}}}`))
	f.Add([]byte(`{"serial":1,"etag":"a\r\nX-Injected: 1","expires":"2030-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"serial":-5,"signed_by":"SHA256:x","reload_needed":true}`))
	f.Add([]byte(`{"serial":1`))

	f.Fuzz(func(t *testing.T, state []byte) {
		c := newClient(t, ts.url(), key.Public())
		c.opts.Reload = ""
		if err := os.MkdirAll(c.opts.StateDir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(c.opts.StateDir, stateFile), state, 0o600); err != nil {
			t.Fatal(err)
		}
		var parsed fetchState
		bad := json.Unmarshal(state, &parsed) != nil
		_, err := c.fetch(t)
		if bad && !errors.Is(err, ErrStateDir) {
			t.Fatalf("unreadable state: err = %v, want ErrStateDir", err)
		}
		for _, p := range []string{c.opts.PostfixMap, c.opts.EximFile} {
			b, rerr := os.ReadFile(p)
			if rerr != nil {
				continue
			}
			if bad {
				t.Fatalf("%s installed with an unreadable state", p)
			}
			if !bytes.Equal(b, want[filepath.Base(filepath.Dir(p))]) && entries(b) != 0 {
				t.Fatalf("%s enforces something other than the signed list (err %v):\n%s", p, err, b)
			}
		}
		if b, rerr := os.ReadFile(filepath.Join(c.opts.StateDir, stateFile)); rerr == nil && !bad {
			if err := json.Unmarshal(b, new(fetchState)); err != nil {
				t.Fatalf("state written back does not parse: %v", err)
			}
		}
	})
}
