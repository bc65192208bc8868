//go:build !unix

package publish

import "errors"

// lockFile needs flock(2): the fetch client runs on Unix MTA hosts.
func lockFile(path string) (unlock func(), err error) {
	return nil, errors.New("publish: locking the state directory needs a Unix system")
}

// checkStateDir has nothing to check where fetch cannot run.
func checkStateDir(dir string) error { return nil }
