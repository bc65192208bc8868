//go:build unix

package publish

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The state directory is refused when someone else could write to it or
// owns it: its files decide what a root process installs.
func TestFetchRefusesUnsafeStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give the directory to another user")
	}
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	tests := []struct {
		name  string
		setup func(dir string) error
		hint  string // in the one-line error; "" = accepted
	}{
		{"writable by everyone", func(d string) error { return os.Chmod(d, 0o777) }, "chmod go-w " + "DIR"},
		{"writable by the group", func(d string) error { return os.Chmod(d, 0o770) }, "chmod go-w " + "DIR"},
		{"sticky and writable by everyone", func(d string) error { return os.Chmod(d, 0o777|os.ModeSticky) }, "chmod go-w " + "DIR"},
		{"owned by another user", func(d string) error { return os.Chown(d, 4242, -1) }, "chown"},
		{"readable by everyone", func(d string) error { return os.Chmod(d, 0o755) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, ts.url(), key.Public())
			if err := os.MkdirAll(c.opts.StateDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := tt.setup(c.opts.StateDir); err != nil {
				t.Fatal(err)
			}
			_, err := c.fetch(t)
			if tt.hint == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			hint := strings.ReplaceAll(tt.hint, "DIR", c.opts.StateDir)
			if !errors.Is(err, ErrStateDir) || !strings.Contains(err.Error(), hint) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v; want one line with ErrStateDir and %q", err, hint)
			}
			if _, err := os.Stat(c.opts.PostfixMap); !os.IsNotExist(err) {
				t.Errorf("map installed from an unsafe state directory")
			}
		})
	}
}

// The lock file is opened without following a symbolic link: a link
// planted there does not make fetch create or lock another file.
func TestFetchLockIsNotFollowed(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	if err := os.MkdirAll(c.opts.StateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(c.dir, "victim")
	if err := os.Symlink(victim, filepath.Join(c.opts.StateDir, lockName)); err != nil {
		t.Fatal(err)
	}
	_, err := c.fetch(t)
	if !errors.Is(err, ErrStateDir) || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("err = %v, want ErrStateDir naming the symbolic link", err)
	}
	if _, err := os.Lstat(victim); !os.IsNotExist(err) {
		t.Errorf("the link's target was created")
	}
}

// Temporary files a killed run left (recognised by their name: ".NAME.tmp-*"
// beside each file fetch writes) are removed by the next run; other files
// are not touched.
func TestFetchRemovesTemporaryFilesOfAKilledRun(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	c.opts.Postmap = "hash"
	c.opts.PostmapCommand = []string{"sh", "-c", `cp "${1#hash:}" "${1#hash:}.db"`, "postmap"}
	for _, d := range []string{c.opts.StateDir, filepath.Dir(c.opts.PostfixMap), filepath.Dir(c.opts.EximFile)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pf, ex, sd := filepath.Dir(c.opts.PostfixMap), filepath.Dir(c.opts.EximFile), c.opts.StateDir
	stale := []string{
		filepath.Join(sd, ".state.json.tmp-123"),
		filepath.Join(sd, ".expiry.json.tmp-4"),
		filepath.Join(sd, "."+ListFile+".tmp-99"),
		filepath.Join(sd, "."+SigFile+".tmp-98"),
		filepath.Join(pf, ".starttls-policy.tmp-777"),
		filepath.Join(pf, ".starttls-policy.tmp-777.db"),
		filepath.Join(pf, ".starttls-policy.tmp-777.db-lock"),
		filepath.Join(ex, ".starttls-policy.tmp-5"),
	}
	kept := []string{
		filepath.Join(pf, ".other-map.tmp-1"),
		filepath.Join(pf, "starttls-policy.tmp-1"),
		filepath.Join(pf, "main.cf"),
		filepath.Join(sd, ".notes.tmp-1"),
	}
	for _, p := range append(append([]string{}, stale...), kept...) {
		if err := os.WriteFile(p, []byte("left over"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A directory of that name is not ours to remove.
	dir := filepath.Join(pf, ".starttls-policy.tmp-dir")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	kept = append(kept, dir)
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("%s left behind", p)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
