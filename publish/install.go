package publish

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
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

// upToDate reports whether the installed files already hold o.data.
func (o output) upToDate() bool {
	cur, err := os.ReadFile(o.path)
	if err != nil || !bytes.Equal(cur, o.data) {
		return false
	}
	if o.postmap != "" {
		if _, err := os.Stat(o.path + postmapSuffix[o.postmap]); err != nil {
			return false
		}
	}
	return true
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
		tmp, err := writeTemp(o.path, o.data, 0o644)
		if err != nil {
			abort()
			return nil, fmt.Errorf("%w: %w", ErrInstall, err)
		}
		s := staged{output: o, tmp: tmp}
		ready = append(ready, s)
		if o.postmap != "" {
			if err := f.postmap(ctx, o.postmap, tmp); err != nil {
				abort()
				return nil, err
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
	cmd := exec.CommandContext(ctx, f.o.PostmapCommand[0], args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %w%s", ErrPostmap, err, firstLine(out))
	}
	if _, err := os.Stat(file + postmapSuffix[typ]); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s%s was not created", ErrPostmap, file, postmapSuffix[typ])
	}
	return nil
}
