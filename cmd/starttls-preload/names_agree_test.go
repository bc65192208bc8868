package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/validate"
)

// nameAgreeInputs are names people and programs send: the checker's
// normaliser (validate.NormalizeDomain) and the doors' (listgen.ParseDomain,
// whose syntax part is listgen.NormalizeName) must accept and rewrite them
// alike.
var nameAgreeInputs = []string{
	"example.com", "Example.COM.", " example.org\t", "example.com..", ".example.com", "bücher.de", "BÜCHER.de.",
	"ｅｘａｍｐｌｅ.com", "xn--bcher-kva.de", "XN--BCHER-KVA.DE", "r3--sn-abc.example.com", "r3--sn-abc.bücher.de",
	"xn--zz.example.com", "bücher-.de", "a\u00a0b.example.com", "a\u200bb.example.com", "192.0.2.1", "192.0.2.1.",
	"[192.0.2.1]", "192.0.2.1:25", "2001:db8::1", "[2001:db8::1]", "[IPv6:2001:db8::1]", "fe80::1%eth0", "127.1",
	"com", "co.uk", "github.io", "example.123", "foo.invalidtld", "example.test", "mail.example.test", "test",
	strings.Repeat("a", 63) + ".com", strings.Repeat("a", 64) + ".com", strings.Repeat("abcdefghi.", 25) + "example.com",
	"", " ", ".", "exa mple.com", "postmaster@example.com", "example.com/path", "https://example.com", "example.com:25",
	"_mta-sts.example.com", "*.example.com", "-a.example.com", "a-.example.com", "exa\x00mple.com", "example.com\r\n",
}

// checkNamesAgree fails t when the checker's and the doors' normalisers
// disagree about s.
func checkNamesAgree(t *testing.T, s string) {
	t.Helper()
	v, verr := validate.NormalizeDomain(s)
	l, lerr := listgen.NormalizeName(s)
	if (verr == nil) != (lerr == nil) || v != l {
		t.Fatalf("%q: validate.NormalizeDomain = %q, %v; listgen.NormalizeName = %q, %v", s, v, verr, l, lerr)
	}
	if verr != nil && !errors.Is(verr, validate.ErrInvalidDomain) {
		t.Fatalf("%q: %v is not validate.ErrInvalidDomain", s, verr)
	}
	for _, allow := range []bool{false, true} {
		p, perr := listgen.ParseDomain(s, listgen.NameOptions{AllowTestTLD: allow})
		switch {
		case perr == nil && (lerr != nil || p != l):
			t.Fatalf("%q: ParseDomain = %q but NormalizeName = %q, %v", s, p, l, lerr)
		case perr != nil && lerr != nil && perr.Error() != lerr.Error():
			t.Fatalf("%q: ParseDomain and NormalizeName refuse it for different reasons: %v; %v", s, perr, lerr)
		}
	}
}

func TestNamesAgree(t *testing.T) {
	for _, s := range nameAgreeInputs {
		checkNamesAgree(t, s)
	}
}

func FuzzNamesAgree(f *testing.F) {
	for _, s := range nameAgreeInputs {
		f.Add(s)
	}
	f.Fuzz(checkNamesAgree)
}

// TestCommandsUseParseDomain: check and domains take names through
// listgen.ParseDomain, with list.allow_test_tld deciding ".test".
func TestCommandsUseParseDomain(t *testing.T) {
	l := newCheckLab(t)
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "false")
	for _, tt := range []struct {
		args []string
		says string
	}{
		{[]string{"check", "co.uk"}, "public suffix"},
		{[]string{"check", "example.123"}, "top-level domain"},
		{[]string{"check", "192.0.2.1"}, "IP address"},
		{[]string{"check", "[2001:db8::1]"}, "IP address"},
		{[]string{"check", "foo.invalidtld"}, "top-level domain"},
		{[]string{"check", "good.test"}, "top-level domain"},
		{[]string{"domains", "show", "co.uk"}, "public suffix"},
		{[]string{"domains", "show", "example.test"}, "top-level domain"},
		{[]string{"domains", "remove", "192.0.2.1"}, "IP address"},
		{[]string{"domains", "add", "github.io", "--mx", "mx.example.com", "--skip-ownership"}, "public suffix"},
	} {
		args := tt.args
		switch args[0] {
		case "check":
			args = l.args(args[1:]...) // the lab's resolver, were a name looked up
		case "domains":
			args = append(args, "--data-dir", t.TempDir())
		}
		_, stderr, code := execute(t, args...)
		if code != exitUsage || !strings.Contains(stderr, tt.says) || strings.Contains(strings.TrimSpace(stderr), "\n") {
			t.Errorf("%q: exit %d, stderr %q; want exit %d, one line saying %q", tt.args, code, stderr, exitUsage, tt.says)
		}
	}
}

// TestCommandsAllowTestTLD: with list.allow_test_tld (here from the
// environment), ".test" names are taken, in arguments and in a domains
// file, and other refusals stand.
func TestCommandsAllowTestTLD(t *testing.T) {
	l := newCheckLab(t)
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	if _, stderr, code := execute(t, l.args("--json", "Good.Test.")...); code != exitOK {
		t.Errorf("check Good.Test.: exit %d, %s", code, stderr)
	}
	if _, stderr, code := execute(t, "domains", "show", "absent.test", "--data-dir", t.TempDir()); code == exitUsage {
		t.Errorf("domains show absent.test: a usage error: %s", stderr)
	}
	file := filepath.Join(t.TempDir(), "domains.txt")
	os.WriteFile(file, []byte("good.test\nco.uk\nexample.123\n"), 0o644)
	out, stderr, code := execute(t, l.args("--json", "--domains-file", file)...)
	if code != exitFindings || !strings.Contains(stderr, "2 invalid domain name") || strings.Count(out, "\n") != 1 {
		t.Errorf("domains file: exit %d, stderr %q, output %q; want exit 1, two invalid names, one result", code, stderr, out)
	}
}
