package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// output is one file Fetch installs.
type output struct {
	path    string
	data    []byte
	postmap string // table type to compile with postmap, "" for none
}

// installedPaths lists the files an MTA reads for this output.
func (o output) installedPaths() []string {
	if o.postmap == "" {
		return []string{o.path}
	}
	return []string{o.path, o.path + postmapSuffix[o.postmap]}
}

// upToDate reports whether the installed files already hold o.data. Only
// regular files count, read no further than o.data's length.
func (o output) upToDate() bool {
	if !sameContent(o.path, o.data) {
		return false
	}
	if o.postmap != "" {
		if st, err := os.Lstat(o.path + postmapSuffix[o.postmap]); err != nil || !st.Mode().IsRegular() {
			return false
		}
	}
	return true
}

// sameContent reports whether path is a regular file (not a symbolic link,
// a FIFO or a device) holding exactly data. It reads at most len(data)
// bytes, a chunk at a time.
func sameContent(path string, data []byte) bool {
	f, err := openNoFollow(path)
	if err != nil {
		return false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || st.Size() != int64(len(data)) {
		return false
	}
	buf := make([]byte, 64<<10)
	r := io.LimitReader(f, int64(len(data))+1)
	for off := 0; ; {
		n, err := r.Read(buf)
		if n > 0 {
			if off+n > len(data) || !bytes.Equal(buf[:n], data[off:off+n]) {
				return false
			}
			off += n
		}
		if err == io.EOF {
			return off == len(data)
		}
		if err != nil {
			return false
		}
	}
}

// fileMeta is the owner, group and mode an installed file keeps.
type fileMeta struct {
	perm     os.FileMode
	uid, gid int
	owned    bool // uid and gid are known
}

// installedMeta returns the owner, group and mode of the regular file at
// path, and whether there is one; else the mode of a new file, 0644.
func installedMeta(path string) (fileMeta, bool) {
	st, err := os.Lstat(path)
	if err != nil || !st.Mode().IsRegular() {
		return fileMeta{perm: 0o644}, false
	}
	m := fileMeta{perm: st.Mode().Perm()}
	m.uid, m.gid, m.owned = owner(st)
	return m, true
}

// apply gives the file at path (a temporary file of ours) the owner and
// group of m, and, if mode, its mode.
func (m fileMeta) apply(path string, mode bool) error {
	st, err := os.Lstat(path)
	if err != nil {
		return err
	}
	if mode && st.Mode().Perm() != m.perm {
		if err := os.Chmod(path, m.perm); err != nil {
			return err
		}
	}
	if uid, gid, ok := owner(st); m.owned && ok && (uid != m.uid || gid != m.gid) {
		if err := os.Lchown(path, m.uid, m.gid); err != nil {
			return fmt.Errorf("keeping the owner %d:%d of the installed file: %w", m.uid, m.gid, err)
		}
	}
	return nil
}

type staged struct {
	output
	tmp string
}

func (s staged) remove() {
	os.Remove(s.tmp)
	if s.postmap != "" {
		os.Remove(s.tmp + postmapSuffix[s.postmap])
		os.Remove(s.tmp + postmapSuffix[s.postmap] + "-lock")
	}
}

// writeOutputs installs every output that changed: all of them are first
// written to temporary files beside their targets and compiled with postmap
// there; only when every one is ready are they renamed into place. A
// failure before that leaves the installed files untouched. It returns the
// paths it replaced.
func (f *fetcher) writeOutputs(ctx context.Context, outs []output) ([]string, error) {
	var ready []staged
	abort := func() {
		for _, s := range ready {
			s.remove()
		}
	}
	for _, o := range outs {
		if o.upToDate() {
			continue
		}
		meta, had := installedMeta(o.path)
		tmp, err := writeTemp(o.path, o.data, meta.perm)
		if err != nil {
			abort()
			return nil, fmt.Errorf("%w: %w", ErrInstall, err)
		}
		s := staged{output: o, tmp: tmp}
		ready = append(ready, s)
		if o.postmap != "" {
			// postmap runs on a file owned by us (it would switch to the
			// file's owner); ownership is restored afterwards.
			if err := f.postmap(ctx, o.postmap, tmp); err != nil {
				abort()
				return nil, err
			}
			compiled := postmapSuffix[o.postmap]
			cmeta, chad := installedMeta(o.path + compiled)
			if !chad && had {
				cmeta, chad = meta, true
			}
			if chad {
				if err := cmeta.apply(tmp+compiled, true); err != nil {
					abort()
					return nil, fmt.Errorf("%w: %w", ErrInstall, err)
				}
			}
		}
		if had {
			if err := meta.apply(tmp, false); err != nil {
				abort()
				return nil, fmt.Errorf("%w: %w", ErrInstall, err)
			}
		}
	}
	slog.Debug("staged", "files", len(ready))
	var files []string
	dirs := map[string]bool{}
	for i, s := range ready {
		err := error(nil)
		if s.postmap != "" {
			suffix := postmapSuffix[s.postmap]
			err = os.Rename(s.tmp+suffix, s.path+suffix)
			os.Remove(s.tmp + suffix + "-lock")
		}
		if err == nil {
			err = os.Rename(s.tmp, s.path)
		}
		if err != nil {
			for _, r := range ready[i:] {
				r.remove()
			}
			return files, fmt.Errorf("%w: %w", ErrInstall, err)
		}
		files = append(files, s.installedPaths()...)
		dirs[filepath.Dir(s.path)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return files, fmt.Errorf("%w: %w", ErrInstall, err)
		}
	}
	return files, nil
}

// postmap compiles the temporary copy of the Postfix map.
func (f *fetcher) postmap(ctx context.Context, typ, file string) error {
	args := append(append([]string{}, f.o.PostmapCommand[1:]...), typ+":"+file)
	out, err := runCommand(ctx, f.o.CommandTimeout, f.o.PostmapCommand[0], args...)
	if err != nil {
		return fmt.Errorf("%w: %w%s", ErrPostmap, err, firstLine(out))
	}
	if st, err := os.Lstat(file + postmapSuffix[typ]); errors.Is(err, fs.ErrNotExist) || err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s%s was not created", ErrPostmap, file, postmapSuffix[typ])
	}
	return nil
}
