package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// Lister is a Source that can enumerate its serials (the Archive does).
type Lister interface {
	Serials(ctx context.Context) ([]int64, error)
}

// Export writes the tree NewHandler serves as static files under dir, for
// any static web server, mirror or CDN: every list by serial under
// v/SERIAL/ (a file already there must be identical: it is immutable), then
// the public key and the current list, its signatures and its renderings
// at the top. Each file is replaced atomically. Mirrors need no trust:
// clients verify the signature with the key they pinned.
func Export(ctx context.Context, src Source, dir string, pubPEM []byte, allowedSigners string) error {
	cur, err := src.Current(ctx)
	if err != nil {
		return err
	}
	serials := []int64{cur.Serial}
	if l, ok := src.(Lister); ok {
		if serials, err = l.Serials(ctx); err != nil {
			return err
		}
	}
	for _, n := range serials {
		vdir := filepath.Join(dir, "v", strconv.FormatInt(n, 10))
		if err := os.MkdirAll(vdir, 0o755); err != nil {
			return fmt.Errorf("publish: export: %w", err)
		}
		for _, name := range []string{ListFile, SigFile, SSHSigFile} {
			if err := exportFile(ctx, src, n, name, filepath.Join(vdir, name)); err != nil {
				return err
			}
		}
	}
	l, err := listgen.Parse(cur.List)
	if err != nil {
		return fmt.Errorf("publish: export: current list: %w", err)
	}
	pf, ex := listgen.Render(l, listgen.RenderOptions{Now: cur.Published})
	top := []namedFile{
		{PubKeyFile, pubPEM},
		{AllowedSignersFile, []byte(allowedSigners)},
		{PostfixFile, pf},
		{EximFile, ex},
	}
	// The signatures go first, so that a reader who sees the new list
	// finds its signature (it may still see the new signature with the old
	// list for a moment, and simply tries again later).
	files := snapshotFiles(cur)
	files[0], files[len(files)-1] = files[len(files)-1], files[0]
	if err := writeFiles(dir, append(top, files...), false); err != nil {
		return err
	}
	return nil
}

// exportFile copies one file of a list by serial to path, streamed. A
// file already at path must be identical (a published file is immutable);
// a file the list does not have (an SSH signature) is skipped.
func exportFile(ctx context.Context, src Source, serial int64, name, path string) error {
	f, err := src.Open(ctx, serial, name)
	if errors.Is(err, ErrNotFound) && name == SSHSigFile {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if old, err := os.Open(path); err == nil {
		same, err := filesEqual(old, f.File)
		old.Close()
		if err != nil {
			return fmt.Errorf("publish: export: %w", err)
		}
		if !same {
			return fmt.Errorf("%w: %s differs from the archive and is immutable", ErrExportConflict, path)
		}
		return nil
	}
	t, err := writeTempFrom(path, 0o644, func(w io.Writer) error {
		_, err := io.Copy(w, io.NewSectionReader(f, 0, f.Size))
		return err
	})
	if err == nil {
		err = renameTemp(t, path)
	}
	if err != nil {
		return fmt.Errorf("publish: export: %w", err)
	}
	return nil
}

// filesEqual compares two files from their start, a block at a time.
func filesEqual(a, b *os.File) (bool, error) {
	ra, rb := io.NewSectionReader(a, 0, 1<<62), io.NewSectionReader(b, 0, 1<<62)
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, erra := io.ReadFull(ra, ba)
		nb, errb := io.ReadFull(rb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		doneA := erra == io.EOF || erra == io.ErrUnexpectedEOF
		doneB := errb == io.EOF || errb == io.ErrUnexpectedEOF
		if erra != nil && !doneA {
			return false, erra
		}
		if errb != nil && !doneB {
			return false, errb
		}
		if doneA || doneB {
			return doneA && doneB, nil
		}
	}
}

type namedFile struct {
	name string
	data []byte
}

func snapshotFiles(s *Snapshot) []namedFile {
	fs := []namedFile{{ListFile, s.List}, {SigFile, s.Sig}}
	if len(s.SSHSig) > 0 {
		fs = append(fs, namedFile{SSHSigFile, s.SSHSig})
	}
	return fs
}

// writeFiles writes files under dir; with immutable set, a file already
// there must hold the same bytes.
func writeFiles(dir string, files []namedFile, immutable bool) error {
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if cur, err := os.ReadFile(p); err == nil {
			if bytes.Equal(cur, f.data) {
				continue
			}
			if immutable {
				return fmt.Errorf("%w: %s differs from the archive and is immutable", ErrExportConflict, p)
			}
		}
		if err := writeFileAtomic(p, f.data, 0o644); err != nil {
			return fmt.Errorf("publish: export: %w", err)
		}
	}
	return nil
}
