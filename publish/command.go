package publish

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// DefaultCommandTimeout bounds postmap and the reload command when
// FetchOptions.CommandTimeout is not set: postmap of a 1,000,000-line
// table takes seconds, a reload less.
const DefaultCommandTimeout = 5 * time.Minute

// maxCommandOutput bounds what is kept of a command's output (for the
// error that quotes its first line).
const maxCommandOutput = 4 << 10

// headWriter keeps the first maxCommandOutput bytes written to it and
// drops the rest, so that a chatty command cannot fill memory.
type headWriter struct{ b []byte }

func (w *headWriter) Write(p []byte) (int, error) {
	if room := maxCommandOutput - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// runCommand runs name with args, its output (stdout and stderr, bounded)
// returned. It is killed, with every process it started, when timeout
// passes or ctx is cancelled; the error then says which.
func runCommand(ctx context.Context, timeout time.Duration, name string, args ...string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, name, args...)
	ownProcessGroup(cmd)
	// A killed shell's children may hold its output pipe open: stop
	// waiting for them soon after the kill.
	cmd.WaitDelay = time.Second
	var out headWriter
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	switch {
	case err == nil:
		return out.b, nil
	case ctx.Err() != nil:
		return out.b, fmt.Errorf("stopped: %w", ctx.Err())
	case errors.Is(cctx.Err(), context.DeadlineExceeded):
		return out.b, fmt.Errorf("killed after %s (the command timeout): %w", timeout, context.DeadlineExceeded)
	}
	return out.b, err
}
