package publish

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tempPrefix starts the name of every temporary file written for path
// (".NAME.tmp-"), so that one left by a killed run is recognised.
func tempPrefix(path string) string { return "." + filepath.Base(path) + ".tmp-" }

// createTemp creates a temporary file beside path (same directory, hence
// same file system, so that a rename is atomic). The caller renames or
// removes it.
func createTemp(path string, perm os.FileMode) (*os.File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), tempPrefix(path)+"*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return f, nil
}

// writeTemp writes data to a new temporary file beside path, fsyncs and
// closes it, and returns its name.
func writeTemp(path string, data []byte, perm os.FileMode) (string, error) {
	return writeTempFrom(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// writeTempFrom is writeTemp of what write writes, streamed. On any
// failure the temporary file is removed.
func writeTempFrom(path string, perm os.FileMode, write func(io.Writer) error) (string, error) {
	f, err := createTemp(path, perm)
	if err != nil {
		return "", err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// renameTemp renames the temporary file tmp to path, and removes it when
// that fails.
func renameTemp(tmp, path string) error {
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// writeFileAtomic replaces path with data so that a reader sees either the
// old file or the new one, never a part: temporary file, fsync, rename,
// fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := renameTemp(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// CreateFileOnce creates path holding data (mode perm) unless it exists:
// the data goes to a temporary file beside it, fsynced, then linked into
// place with link(2), which fails when path exists. So path never holds a
// part of data, whatever crashes, and of processes creating it at once
// one creates it and the others find it (created false, nil error) —
// unlike a rename, which would replace a file another process had just
// created and read.
func CreateFileOnce(path string, data []byte, perm os.FileMode) (created bool, err error) {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(path))
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// ReadFileLimit reads path and fails with ErrTooLarge when it is longer
// than limit bytes, without reading further, whatever the file is (a pipe,
// a device). The errors of opening it are those of os.Open.
func ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, limit)
	}
	return b, nil
}

// staleTemps lists the regular files beside path whose names are those of
// its temporary files (and of what postmap makes of them).
func staleTemps(path string) []string {
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil
	}
	var names []string
	prefix := tempPrefix(path)
	for _, e := range ents {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), prefix) {
			names = append(names, filepath.Join(filepath.Dir(path), e.Name()))
		}
	}
	return names
}
