package burst

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Child is a running child process.
type Child struct {
	t     testing.TB
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	done  chan error
}

// Spawn re-executes the test binary in a child mode with the given extra
// environment (KEY=VALUE). The child is killed when the test ends.
func Spawn(t testing.TB, env ...string) *Child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = &prefixWriter{t: t}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Child{t: t, cmd: cmd, stdin: stdin, lines: make(chan string, 1024), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		for range c.lines {
		}
	})
	return c
}

type prefixWriter struct{ t testing.TB }

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.t.Logf("child stderr: %s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Expect waits for a line starting with prefix (skipping others) and returns
// it; it fails the test if the child exits first or after the deadline,
// which only bounds a hung child.
func (c *Child) Expect(prefix string) string {
	c.t.Helper()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("child exited while waiting for %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-deadline:
			c.t.Fatalf("no %q from the child in 2 minutes", prefix)
		}
	}
}

// Send writes a line to the child's standard input.
func (c *Child) Send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatal(err)
	}
}

// CloseInput closes the child's standard input.
func (c *Child) CloseInput() { c.stdin.Close() }

// Wait waits for the child to exit and fails the test unless it exited 0.
func (c *Child) Wait() {
	c.t.Helper()
	for range c.lines {
	}
	if err := <-c.done; err != nil {
		c.t.Fatalf("child: %v", err)
	}
}

// Kill sends SIGKILL, waits for the child to die, and returns the lines it
// wrote that were not read yet.
func (c *Child) Kill() []string {
	c.t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	var rest []string
	for l := range c.lines {
		rest = append(rest, l)
	}
	<-c.done
	return rest
}
