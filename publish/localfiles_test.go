//go:build unix

package publish

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

// mkfifo makes a named pipe nobody writes to: reading it blocks for ever.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
}

// What sits at an installed path is read only if it is a regular file, and
// only up to the size of what would replace it: a FIFO (which blocks a
// reader for ever) or a link to /dev/zero (endless) is simply replaced.
func TestFetchInstalledPathIsNotARegularFile(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	tests := []struct {
		name  string
		plant func(t *testing.T, path string)
	}{
		{"FIFO", func(t *testing.T, p string) { mkfifo(t, p) }},
		{"link to /dev/zero", func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}},
		{"link to a FIFO", func(t *testing.T, p string) {
			mkfifo(t, p+".fifo")
			if err := os.Symlink(p+".fifo", p); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for _, when := range []string{"before the first run", "after an install"} {
			t.Run(tt.name+" "+when, func(t *testing.T) {
				c := newClient(t, ts.url(), key.Public())
				c.opts.Postmap = "hash"
				c.opts.PostmapCommand = []string{"sh", "-c", `cp "${1#hash:}" "${1#hash:}.db"`, "postmap"}
				os.MkdirAll(filepath.Dir(c.opts.PostfixMap), 0o755)
				os.MkdirAll(filepath.Dir(c.opts.EximFile), 0o755)
				if when == "after an install" {
					if _, err := c.fetch(t); err != nil {
						t.Fatal(err)
					}
				}
				for _, p := range []string{c.opts.PostfixMap, c.opts.PostfixMap + ".db", c.opts.EximFile} {
					os.Remove(p)
					tt.plant(t, p)
				}
				res, err := c.fetch(t)
				if err != nil || !res.Changed {
					t.Fatalf("res %+v, err %v", res, err)
				}
				for _, p := range []string{c.opts.PostfixMap, c.opts.PostfixMap + ".db", c.opts.EximFile} {
					if st, err := os.Lstat(p); err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
						t.Errorf("%s: %v, %v; want the installed file", p, st.Mode(), err)
					}
				}
			})
		}
	}
}

func TestSameContent(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	data := []byte(strings.Repeat("policy line\n", 20000))
	os.WriteFile(p, data, 0o644)
	if !sameContent(p, data) {
		t.Error("same content not recognised")
	}
	other := append([]byte(nil), data...)
	other[len(other)-2] = 'X'
	for name, d := range map[string][]byte{"one byte differs": other, "shorter": data[:len(data)-1], "longer": append(data[:len(data):len(data)], 'x'), "empty": nil} {
		if sameContent(p, d) {
			t.Errorf("%s: reported the same", name)
		}
	}
	os.Symlink(p, filepath.Join(dir, "link"))
	if sameContent(filepath.Join(dir, "link"), data) {
		t.Error("a symbolic link was followed")
	}
	if sameContent("/dev/null", nil) {
		t.Error("a device was read")
	}
}

// blockingScript is a shell command that records its process and that of
// a child in pidfile, then blocks reading a pipe nobody writes to: it
// never exits by itself.
func blockingScript(t *testing.T, dir string) (script, pidfile string) {
	t.Helper()
	fifo := filepath.Join(dir, "never")
	mkfifo(t, fifo)
	pidfile = filepath.Join(dir, "pids")
	return fmt.Sprintf(`cat %s & echo "$$ $!" > %s.tmp; mv %s.tmp %s; read x < %s`, fifo, pidfile, pidfile, pidfile, fifo), pidfile
}

// gone waits until every process named in pidfile has ended: it returns
// at once for processes that were killed, and never (the test times out)
// for one that was left running.
func gone(t *testing.T, pidfile string) {
	t.Helper()
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Logf("the command did not get to record its processes: %v", err)
		return
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // ended and reaped
		}
		// A pidfd polls readable once the process has ended.
		for {
			_, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, -1)
			if err != unix.EINTR {
				break
			}
		}
		unix.Close(fd)
	}
}

// A reload command or postmap that never exits is killed, with its
// children, after the command timeout, and reported.
func TestFetchCommandTimeout(t *testing.T) {
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	for _, which := range []string{"reload", "postmap"} {
		t.Run(which, func(t *testing.T) {
			c := newClient(t, ts.url(), key.Public())
			script, pidfile := blockingScript(t, c.dir)
			c.opts.CommandTimeout = 500 * time.Millisecond
			want := ErrReload
			if which == "reload" {
				c.opts.Reload = script
			} else {
				c.opts.Postmap = "hash"
				c.opts.PostmapCommand = []string{"sh", "-c", script, "postmap"}
				want = ErrPostmap
			}
			res, err := c.fetch(t)
			if !errors.Is(err, want) || !strings.Contains(err.Error(), "killed after 500ms") {
				t.Fatalf("res %+v, err %v; want %v saying it was killed", res, err, want)
			}
			gone(t, pidfile)
			if which == "postmap" {
				if _, err := os.Stat(c.opts.PostfixMap); !os.IsNotExist(err) {
					t.Error("the map was installed although postmap did not finish")
				}
			}
		})
	}
}

// Cancelling the context (SIGTERM in the command) stops a fetch that waits
// for a server or for the reload command.
func TestFetchStopsWhenCancelled(t *testing.T) {
	key := newKey(t)
	snap := snapshot(t, key, testList(10, 1))
	for _, which := range []string{"download", "reload"} {
		t.Run(which, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			started := make(chan struct{})
			url := badServer(t, func(w http.ResponseWriter, r *http.Request) {
				if which == "download" {
					w.Header().Set("Content-Length", strconv.Itoa(len(snap.List)))
					w.Write(snap.List[:10])
					w.(http.Flusher).Flush()
					close(started)
					<-r.Context().Done()
					return
				}
				w.Write(snap.List)
			}, bytesHandler(snap.Sig))
			c := newClient(t, url, key.Public())
			var pidfile string
			if which == "reload" {
				// The command says it started through a pipe the test reads.
				ready := filepath.Join(c.dir, "ready")
				mkfifo(t, ready)
				var script string
				script, pidfile = blockingScript(t, c.dir)
				c.opts.Reload = "echo started > " + ready + "; " + script
				go func() {
					b, _ := os.ReadFile(ready)
					if len(b) > 0 {
						close(started)
					}
				}()
			}
			go func() { <-started; cancel() }()
			os.MkdirAll(filepath.Dir(c.opts.PostfixMap), 0o755)
			os.MkdirAll(filepath.Dir(c.opts.EximFile), 0o755)
			_, err := Fetch(ctx, c.opts)
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if pidfile != "" {
				gone(t, pidfile)
			}
		})
	}
}

// An installed file keeps the owner, group and mode it had: an operator's
// root:mail 0640 map stays so, and so does its compiled table. A file that
// did not exist gets 0644.
func TestFetchKeepsOwnerGroupAndMode(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files to another group")
	}
	const gid = 4243 // a test group; it need not exist
	key := newKey(t)
	ts := newTestServer(t, key, testList(10, 1))
	c := newClient(t, ts.url(), key.Public())
	c.opts.Postmap = "hash"
	c.opts.PostmapCommand = []string{"sh", "-c", `cp "${1#hash:}" "${1#hash:}.db"; chmod 0644 "${1#hash:}.db"`, "postmap"}
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.opts.PostfixMap, c.opts.PostfixMap + ".db"} {
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o644 {
			t.Errorf("%s created with mode %v, want 0644", p, st.Mode())
		}
	}
	modes := map[string]os.FileMode{c.opts.PostfixMap: 0o640, c.opts.PostfixMap + ".db": 0o600, c.opts.EximFile: 0o604}
	for p, m := range modes {
		if err := os.Chown(p, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
	}
	ts.add(t, testList(11, 2))
	if res, err := c.fetch(t); err != nil || !res.Changed {
		t.Fatalf("res %+v, err %v", res, err)
	}
	for p, m := range modes {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		uid, g, _ := owner(st)
		if st.Mode().Perm() != m || uid != 0 || g != gid {
			t.Errorf("%s: %v %d:%d, want %v 0:%d", p, st.Mode(), uid, g, m, gid)
		}
	}
}
