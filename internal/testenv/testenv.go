// Package testenv finds the real components that tests drive (Postfix, Exim,
// PostgreSQL, openssl, ssh-keygen, Chromium). `make check` prepares them
// (scripts/test-env.sh) and sets STARTTLS_PRELOAD_REQUIRE_ALL=1, under which a
// missing component fails the test instead of skipping it: a skipped test
// must never hide a missing piece in CI.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// RequireAll reports whether every component must be present.
func RequireAll() bool { return os.Getenv("STARTTLS_PRELOAD_REQUIRE_ALL") == "1" }

// missing skips the test (plain `go test`) or fails it (`make check`).
func missing(t testing.TB, what string) {
	t.Helper()
	if RequireAll() {
		t.Fatalf("%s is required (STARTTLS_PRELOAD_REQUIRE_ALL=1); run `make check` as root to install it", what)
	}
	t.Skipf("%s not available; `make check` installs it", what)
}

// LookPath returns the path of a command, or skips/fails the test.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, name)
	}
	return p
}

// Postgres returns the DSN of a PostgreSQL server for tests
// (STARTTLS_PRELOAD_TEST_POSTGRES), or skips/fails the test.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("STARTTLS_PRELOAD_TEST_POSTGRES")
	if dsn == "" {
		missing(t, "PostgreSQL (STARTTLS_PRELOAD_TEST_POSTGRES)")
	}
	return dsn
}

// Exim returns the path of the unpacked exim4 binary
// (STARTTLS_PRELOAD_TEST_EXIM), or skips/fails the test.
func Exim(t testing.TB) string {
	t.Helper()
	p := os.Getenv("STARTTLS_PRELOAD_TEST_EXIM")
	if p == "" {
		missing(t, "exim4 (STARTTLS_PRELOAD_TEST_EXIM)")
	}
	if _, err := os.Stat(p); err != nil {
		missing(t, "exim4 at "+p)
	}
	return p
}

// Root skips/fails a test that needs root (Postfix, Exim, port 53).
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "root")
	}
}

// Chromium returns the path of the Chromium browser that chromedp drives
// (STARTTLS_PRELOAD_TEST_CHROMIUM, else `chromium` on PATH), or
// skips/fails the test.
func Chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("STARTTLS_PRELOAD_TEST_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			missing(t, "chromium at "+p)
		}
		return p
	}
	return LookPath(t, "chromium")
}
