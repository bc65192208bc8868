package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// File names of a published list, at the top of the tree (the current
// list) and under v/SERIAL/ (every list ever published).
const (
	ListFile   = "policy-list.json"
	SigFile    = ListFile + ".sig"
	SSHSigFile = ListFile + ".sshsig"
)

// Limits on what the archive reads back from disk.
const (
	maxListSize = 512 << 20
	maxSigSize  = 64 << 10
)

// Snapshot is one signed list as published: the exact bytes of
// policy-list.json and of its two detached signatures. A Snapshot returned
// by a Source is shared: callers must not modify its slices.
type Snapshot struct {
	Serial    int64
	List      []byte // policy-list.json, canonical bytes
	Sig       []byte // policy-list.json.sig
	SSHSig    []byte // policy-list.json.sshsig (may be empty)
	Published time.Time
}

// Source gives the current signed list and every earlier one by serial.
type Source interface {
	Current(ctx context.Context) (*Snapshot, error)
	BySerial(ctx context.Context, serial int64) (*Snapshot, error)
}

var _ Source = (*Archive)(nil)

// Archive is a directory of signed lists:
//
//	DIR/current                       the current serial, one decimal line
//	DIR/v/SERIAL/policy-list.json     the list as signed
//	DIR/v/SERIAL/policy-list.json.sig
//	DIR/v/SERIAL/policy-list.json.sshsig
//	DIR/lock                          taken by Add (flock)
//
// A serial directory is complete before it appears (written under a
// temporary name, fsynced, renamed) and is never changed afterwards;
// DIR/current is replaced atomically after it. The modification time of
// policy-list.json is the publication time. Several processes may read an
// archive while one adds to it.
type Archive struct {
	dir string

	mu    sync.Mutex
	cur   *Snapshot   // cache of the last snapshot Current returned
	curFi os.FileInfo // DIR/current when cur was read
}

// OpenArchive opens (creating if needed) the archive in dir.
func OpenArchive(dir string) (*Archive, error) {
	if err := os.MkdirAll(filepath.Join(dir, "v"), 0o755); err != nil {
		return nil, fmt.Errorf("publish: open archive: %w", err)
	}
	return &Archive{dir: dir}, nil
}

// Dir returns the archive's directory.
func (a *Archive) Dir() string { return a.dir }

// currentSerial reads DIR/current; 0 when nothing is published yet.
func (a *Archive) currentSerial() (int64, error) {
	b, err := ReadFileLimit(filepath.Join(a.dir, "current"), 32)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("publish: archive: %w", err)
	}
	n, err := strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("publish: archive: bad %s", filepath.Join(a.dir, "current"))
	}
	return n, nil
}

// Current returns the newest list, or ErrNotFound when none is published.
// A call costs one stat(2) while DIR/current does not change.
func (a *Archive) Current(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	path := filepath.Join(a.dir, "current")
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	a.mu.Lock()
	cur, curFi := a.cur, a.curFi
	a.mu.Unlock()
	// DIR/current is only ever replaced by a rename: a new file.
	if cur != nil && curFi != nil && os.SameFile(fi, curFi) && fi.ModTime().Equal(curFi.ModTime()) && fi.Size() == curFi.Size() {
		return cur, nil
	}
	n, err := a.currentSerial()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, ErrNotFound
	}
	if cur == nil || cur.Serial != n {
		if cur, err = a.read(n); err != nil {
			return nil, err
		}
	}
	a.mu.Lock()
	if a.cur == nil || a.cur.Serial <= cur.Serial {
		a.cur, a.curFi = cur, fi
	}
	a.mu.Unlock()
	return cur, nil
}

// BySerial returns the list with that serial, or ErrNotFound. A serial
// above the current one is not published (yet), even if its directory
// exists.
func (a *Archive) BySerial(ctx context.Context, serial int64) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if serial <= 0 {
		return nil, ErrNotFound
	}
	if cur, err := a.currentSerial(); err != nil {
		return nil, err
	} else if serial > cur {
		return nil, ErrNotFound
	}
	return a.read(serial)
}

// read reads the files of one serial.
func (a *Archive) read(serial int64) (*Snapshot, error) {
	d := filepath.Join(a.dir, "v", strconv.FormatInt(serial, 10))
	st, err := os.Stat(filepath.Join(d, ListFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	s := &Snapshot{Serial: serial, Published: st.ModTime().UTC()}
	if s.List, err = ReadFileLimit(filepath.Join(d, ListFile), maxListSize); err != nil {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	if s.Sig, err = ReadFileLimit(filepath.Join(d, SigFile), maxSigSize); err != nil {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	s.SSHSig, err = ReadFileLimit(filepath.Join(d, SSHSigFile), maxSigSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	return s, nil
}

// Add publishes s as the new current list. It refuses a serial that is not
// greater than the current one (ErrSerialNotNewer): a published serial is
// never replaced.
func (a *Archive) Add(ctx context.Context, s *Snapshot) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Serial <= 0 || len(s.List) == 0 || len(s.Sig) == 0 {
		return fmt.Errorf("%w: need a positive serial, a list and its signature", ErrBadSnapshot)
	}
	unlock, err := lockFile(filepath.Join(a.dir, "lock"))
	if err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	defer unlock()
	cur, err := a.currentSerial()
	if err != nil {
		return err
	}
	if s.Serial <= cur {
		return fmt.Errorf("%w: serial %d, current %d", ErrSerialNotNewer, s.Serial, cur)
	}
	published := s.Published
	if published.IsZero() {
		published = time.Now()
	}
	vdir := filepath.Join(a.dir, "v")
	tmp, err := os.MkdirTemp(vdir, ".tmp-")
	if err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	files := []struct {
		name string
		data []byte
	}{{ListFile, s.List}, {SigFile, s.Sig}, {SSHSigFile, s.SSHSig}}
	for _, f := range files {
		if f.name == SSHSigFile && len(f.data) == 0 {
			continue
		}
		p := filepath.Join(tmp, f.name)
		t, err := writeTemp(p, f.data, 0o644)
		if err == nil {
			err = os.Rename(t, p)
		}
		if err != nil {
			return fmt.Errorf("publish: archive: %w", err)
		}
	}
	if err := os.Chtimes(filepath.Join(tmp, ListFile), published, published); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	final := filepath.Join(vdir, strconv.FormatInt(s.Serial, 10))
	// A directory for a serial above the current one is what a crash between
	// the rename below and the update of DIR/current leaves behind: never
	// served, safe to replace.
	if err := os.RemoveAll(final); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	if err := syncDir(vdir); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(a.dir, "current"), []byte(strconv.FormatInt(s.Serial, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	return nil
}

// Serials lists the published serials in rising order.
func (a *Archive) Serials(ctx context.Context) ([]int64, error) {
	cur, err := a.currentSerial()
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(a.dir, "v"))
	if err != nil {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	var out []int64
	for _, e := range ents {
		n, err := strconv.ParseInt(e.Name(), 10, 64)
		// A serial above the current one is an unfinished Add.
		if err != nil || !e.IsDir() || n <= 0 || n > cur {
			continue
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return out, nil
}
