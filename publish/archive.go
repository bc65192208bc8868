package publish

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names of a published list, at the top of the tree (the current
// list) and under v/SERIAL/ (every list ever published).
const (
	ListFile   = "policy-list.json"
	SigFile    = ListFile + ".sig"
	SSHSigFile = ListFile + ".sshsig"

	// Beside them in v/SERIAL/, not served under their own names: the
	// list gzipped (sent to clients that accept gzip) and the SHA-256 of
	// every file, in the format of sha256sum(1).
	gzListFile = ListFile + ".gz"
	sumsFile   = "SHA256SUMS"
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

// Source gives the current signed list and the files of every list
// published, by serial.
type Source interface {
	Current(ctx context.Context) (*Snapshot, error)
	Open(ctx context.Context, serial int64, name string) (*File, error)
}

// File is one file of a published list, open for reading from disk. The
// caller closes it.
type File struct {
	*os.File
	Size      int64
	ETag      string    // strong validator of the bytes: hex, without quotes
	Published time.Time // the list's publication time
}

var _ Source = (*Archive)(nil)

// Archive is a directory of signed lists:
//
//	DIR/current                       the current serial, one decimal line
//	DIR/v/SERIAL/policy-list.json     the list as signed
//	DIR/v/SERIAL/policy-list.json.sig
//	DIR/v/SERIAL/policy-list.json.sshsig
//	DIR/v/SERIAL/policy-list.json.gz  the list gzipped, for clients that accept gzip
//	DIR/v/SERIAL/SHA256SUMS           each file's SHA-256 (sha256sum -c reads it)
//	DIR/lock                          taken by Add (flock)
//
// A serial directory is complete before it appears (written under a
// temporary name, fsynced, renamed) and is never changed afterwards;
// DIR/current is replaced atomically after it. The modification time of
// the files is the publication time. Several processes may read an
// archive while one adds to it. The files of a list by serial are served
// from disk (Open); their ETags come from SHA256SUMS, so a request hashes
// nothing. An archive written before SHA256SUMS and the gzipped copy
// existed is served too: without gzip, each file hashed once.
type Archive struct {
	dir string

	mu    sync.Mutex
	cur   *Snapshot   // cache of the last snapshot Current returned
	curFi os.FileInfo // DIR/current when cur was read
	curAt time.Time   // when DIR/current was last seen to name cur; zero after an Add
	adds  uint64      // Adds done, so that a look begun before one does not set curAt

	recheck atomic.Int64 // see SetRecheck; 0: look at DIR/current on every call

	published atomic.Int64 // highest serial seen in DIR/current: lower ones are published for good

	metaMu sync.Mutex
	meta   map[int64]*serialMeta // bounded by maxMeta
}

// maxMeta bounds the serials whose validators an Archive keeps in memory.
const maxMeta = 1024

// serialMeta is what is known of one serial's files without reading them:
// the publication time and the SHA-256 of each file (from SHA256SUMS, or
// computed once for an archive written before it existed).
type serialMeta struct {
	once      sync.Once
	err       error
	published time.Time
	sums      map[string]string // file name -> hex SHA-256

	mu   sync.Mutex
	lazy map[string]*lazySum
}

type lazySum struct {
	once sync.Once
	sum  string
	err  error
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

// SetRecheck lets Current answer from memory for d after each look at
// DIR/current: a list this Archive adds is current at once, one added by
// another process (another Archive on the same directory) within d. For
// an archive whose only writer is this process (serve's own archive),
// where a stat(2) per status page was a measurable part of its cost.
// Zero, the default, looks at DIR/current on every call.
func (a *Archive) SetRecheck(d time.Duration) { a.recheck.Store(int64(max(d, 0))) }

// Current returns the newest list, or ErrNotFound when none is published.
// A call costs one stat(2) while DIR/current does not change (none within
// the SetRecheck interval).
func (a *Archive) Current(ctx context.Context) (*Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d := time.Duration(a.recheck.Load()); d > 0 {
		a.mu.Lock()
		cur, at := a.cur, a.curAt
		a.mu.Unlock()
		if cur != nil && !at.IsZero() && time.Since(at) < d {
			return cur, nil
		}
	}
	a.mu.Lock()
	adds := a.adds
	a.mu.Unlock()
	seen := time.Now()
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
		a.mu.Lock()
		if a.cur == cur && a.adds == adds && a.curAt.Before(seen) {
			a.curAt = seen
		}
		a.mu.Unlock()
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
		if a.adds == adds {
			a.curAt = seen
		}
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
	if err := a.isPublished(serial); err != nil {
		return nil, err
	}
	return a.read(serial)
}

// isPublished returns nil when serial is published, else ErrNotFound. The
// current serial only grows, so a serial at or below one seen before is
// published without reading DIR/current again.
func (a *Archive) isPublished(serial int64) error {
	if serial <= 0 {
		return ErrNotFound
	}
	if serial <= a.published.Load() {
		return nil
	}
	cur, err := a.currentSerial()
	if err != nil {
		return err
	}
	for {
		seen := a.published.Load()
		if cur <= seen || a.published.CompareAndSwap(seen, cur) {
			break
		}
	}
	if serial > cur {
		return ErrNotFound
	}
	return nil
}

// Open opens one file (ListFile, SigFile, SSHSigFile or the gzipped list,
// ListFile+".gz") of the list with that serial, or fails with
// ErrNotFound. Nothing is read or hashed: the ETag comes from the
// serial's SHA256SUMS, read once, or for an archive that has none, from
// one pass over the file, remembered.
func (a *Archive) Open(ctx context.Context, serial int64, name string) (*File, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch name {
	case ListFile, SigFile, SSHSigFile, gzListFile:
	default:
		return nil, ErrNotFound
	}
	if err := a.isPublished(serial); err != nil {
		return nil, err
	}
	m, err := a.serialMeta(serial)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(a.serialDir(serial), name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", f.Name())
	}
	var sum string
	if err == nil {
		sum, err = m.sum(name, f, fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("publish: archive: %w", err)
	}
	return &File{File: f, Size: fi.Size(), ETag: etagOf(sum), Published: m.published}, nil
}

// etagOf makes the ETag of a file from its hex SHA-256: the one the
// handler gives the same bytes in memory.
func etagOf(hexSum string) string { return hexSum[:24] }

func (a *Archive) serialDir(serial int64) string {
	return filepath.Join(a.dir, "v", strconv.FormatInt(serial, 10))
}

// serialMeta returns the serial's metadata, loading it once. A failure is
// not remembered.
func (a *Archive) serialMeta(serial int64) (*serialMeta, error) {
	a.metaMu.Lock()
	if a.meta == nil {
		a.meta = map[int64]*serialMeta{}
	}
	m := a.meta[serial]
	if m == nil {
		if len(a.meta) >= maxMeta {
			for n := range a.meta { // forget any one
				delete(a.meta, n)
				break
			}
		}
		m = &serialMeta{}
		a.meta[serial] = m
	}
	a.metaMu.Unlock()
	m.once.Do(func() { m.err = m.load(a.serialDir(serial)) })
	if m.err != nil {
		a.metaMu.Lock()
		if a.meta[serial] == m {
			delete(a.meta, serial)
		}
		a.metaMu.Unlock()
		if errors.Is(m.err, fs.ErrNotExist) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("publish: archive: %w", m.err)
	}
	return m, nil
}

func (m *serialMeta) load(dir string) error {
	fi, err := os.Stat(filepath.Join(dir, ListFile))
	if err != nil {
		return err
	}
	m.published = fi.ModTime().UTC()
	b, err := ReadFileLimit(filepath.Join(dir, sumsFile), maxSumsSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // an archive written before SHA256SUMS
	}
	if err != nil {
		return err
	}
	m.sums, err = parseSums(b)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(dir, sumsFile), err)
	}
	return nil
}

// sum returns the hex SHA-256 of the serial's file name, open as f: from
// SHA256SUMS, else computed once from f (read with ReadAt: f's offset does
// not move).
func (m *serialMeta) sum(name string, f *os.File, size int64) (string, error) {
	if s, ok := m.sums[name]; ok {
		return s, nil
	}
	m.mu.Lock()
	if m.lazy == nil {
		m.lazy = map[string]*lazySum{}
	}
	l := m.lazy[name]
	if l == nil {
		l = &lazySum{}
		m.lazy[name] = l
	}
	m.mu.Unlock()
	l.once.Do(func() {
		h := sha256.New()
		if _, l.err = io.Copy(h, io.NewSectionReader(f, 0, size)); l.err == nil {
			l.sum = hex.EncodeToString(h.Sum(nil))
		}
	})
	if l.err != nil {
		m.mu.Lock()
		if m.lazy[name] == l {
			delete(m.lazy, name)
		}
		m.mu.Unlock()
		return "", l.err
	}
	return l.sum, nil
}

// maxSumsSize bounds SHA256SUMS (a few lines).
const maxSumsSize = 4 << 10

// parseSums reads the format of sha256sum(1): per line, 64 hex digits, two
// spaces, a file name.
func parseSums(b []byte) (map[string]string, error) {
	sums := map[string]string{}
	for line := range strings.Lines(string(b)) {
		sum, name, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "  ")
		if _, err := hex.DecodeString(sum); !ok || len(sum) != 64 || err != nil || name == "" {
			return nil, errors.New("not in the format of sha256sum")
		}
		sums[name] = strings.ToLower(sum)
	}
	return sums, nil
}

// read reads the files of one serial.
func (a *Archive) read(serial int64) (*Snapshot, error) {
	d := a.serialDir(serial)
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
	sums, err := writeSnapshotFiles(tmp, s)
	if err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(tmp, sumsFile), sums, 0o644); err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	// Every file carries the publication time (Last-Modified when served).
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	for _, e := range ents {
		if err := os.Chtimes(filepath.Join(tmp, e.Name()), published, published); err != nil {
			return fmt.Errorf("publish: archive: %w", err)
		}
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
	err = writeFileAtomic(filepath.Join(a.dir, "current"), []byte(strconv.FormatInt(s.Serial, 10)+"\n"), 0o644)
	// Whatever the outcome, Current looks at DIR/current again.
	a.mu.Lock()
	a.adds++
	a.curAt = time.Time{}
	a.mu.Unlock()
	if err != nil {
		return fmt.Errorf("publish: archive: %w", err)
	}
	return nil
}

// writeSnapshotFiles writes the files of s into the (new, temporary)
// directory dir, with the list gzipped beside it, each fsynced, and
// returns their SHA256SUMS.
func writeSnapshotFiles(dir string, s *Snapshot) ([]byte, error) {
	var sums bytes.Buffer
	add := func(name string, sum []byte) {
		fmt.Fprintf(&sums, "%x  %s\n", sum, name)
	}
	for _, f := range []namedFile{{ListFile, s.List}, {SigFile, s.Sig}, {SSHSigFile, s.SSHSig}} {
		if len(f.data) == 0 {
			continue // no SSH signature
		}
		p := filepath.Join(dir, f.name)
		t, err := writeTemp(p, f.data, 0o644)
		if err == nil {
			err = renameTemp(t, p)
		}
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(f.data)
		add(f.name, sum[:])
	}
	// The gzipped list, compressed once here rather than per request.
	p := filepath.Join(dir, gzListFile)
	h := sha256.New()
	t, err := writeTempFrom(p, 0o644, func(w io.Writer) error {
		zw, _ := gzip.NewWriterLevel(io.MultiWriter(w, h), gzip.BestSpeed)
		if _, err := zw.Write(s.List); err != nil {
			return err
		}
		return zw.Close()
	})
	if err == nil {
		err = renameTemp(t, p)
	}
	if err != nil {
		return nil, err
	}
	add(gzListFile, h.Sum(nil))
	return sums.Bytes(), nil
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
