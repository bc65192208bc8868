// Command starttls-preload checks mail servers, keeps the STARTTLS preload
// list, signs and serves it, and installs it on MTA hosts.
//
// main only wires: configuration (flags, file, environment through one
// Config), signals and logging. Each subcommand lives in its own file.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// run executes the command line and returns the process exit status:
// 0 ok, 1 findings (or a failed verification), 2 usage or configuration error.
func run(ctx context.Context, args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "starttls-preload: "+ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "starttls-preload: "+err.Error())
	return exitUsage
}

const (
	exitOK       = 0
	exitFindings = 1
	exitUsage    = 2
)

// exitError carries an exit status out of a command. An empty msg prints
// nothing (the command already reported).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// failf ends a command with status 1 and one line on stderr.
func failf(format string, a ...any) error {
	return &exitError{code: exitFindings, msg: fmt.Sprintf(format, a...)}
}

// usagef ends a command with status 2 and one line on stderr.
func usagef(format string, a ...any) error {
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, a...)}
}
