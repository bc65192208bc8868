package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// execCLI runs a command line through the root command, as main does, in a
// temporary working directory, and returns stdout, stderr and the exit
// status.
func execCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t.Chdir(t.TempDir())
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	if err == nil {
		return stdout.String(), stderr.String(), exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		stderr.WriteString(ee.msg)
		return stdout.String(), stderr.String(), ee.code
	}
	stderr.WriteString(err.Error())
	return stdout.String(), stderr.String(), exitUsage
}

// repoRootDir is the repository root, taken before any test changes the
// working directory.
var repoRootDir = func() string {
	wd, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	return filepath.Join(wd, "..", "..")
}()

func repoFile(t *testing.T, rel ...string) string {
	t.Helper()
	return filepath.Join(append([]string{repoRootDir}, rel...)...)
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestListLintCommand(t *testing.T) {
	good := mustRead(t, repoFile(t, "listgen", "testdata", "sample.json"))
	noNewline := good[:len(good)-1]
	undefinedAlias := bytes.Replace(good, []byte(`"policy-alias": "hosted"`), []byte(`"policy-alias": "nope"`), 1)
	tests := []struct {
		name     string
		data     []byte
		args     []string
		wantCode int
		wantOut  []string
	}{
		{"good", good, nil, exitOK, nil},
		{"repository list", mustRead(t, repoFile(t, "policy-list.json")), nil, exitOK, nil},
		{"not canonical", noNewline, nil, exitFindings, []string{"list.not_canonical"}},
		{"undefined alias", undefinedAlias, nil, exitFindings, []string{`$.policies["example.net"].policy-alias`, "alias.undefined", "alias.unused"}},
		{"broken", []byte(`{"version": 1}`), nil, exitFindings, []string{"$.version", "list.parse"}},
		{"json", undefinedAlias, []string{"--json"}, exitFindings, []string{`"code":"alias.undefined"`}},
		{"json good", good, []string{"--json"}, exitOK, []string{`"problems":[]`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := writeTemp(t, "policy-list.json", tt.data)
			out, errOut, code := execCLI(t, append(append([]string{"list", "lint"}, tt.args...), file)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestListLintFix(t *testing.T) {
	good := mustRead(t, repoFile(t, "listgen", "testdata", "sample.json"))
	var v any
	if err := json.Unmarshal(good, &v); err != nil {
		t.Fatal(err)
	}
	compact, _ := json.Marshal(v)
	file := writeTemp(t, "l.json", compact)
	if _, errOut, code := execCLI(t, "list", "lint", "--fix", file); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if got := mustRead(t, file); !bytes.Equal(got, good) {
		t.Errorf("--fix wrote:\n%s", got)
	}
}

func TestListImportEFFCommand(t *testing.T) {
	out, errOut, code := execCLI(t, "list", "import-eff", repoFile(t, "listgen", "testdata", "eff", "policy.json"))
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := mustRead(t, repoFile(t, "listgen", "testdata", "eff-import.json")); out != string(want) {
		t.Error("import-eff output differs from listgen/testdata/eff-import.json")
	}
	if _, _, code := execCLI(t, "list", "import-eff", writeTemp(t, "x.json", []byte(`{"version":"9"}`))); code != exitFindings {
		t.Errorf("bad input: exit %d, want 1", code)
	}
}

func TestListRenderCommand(t *testing.T) {
	sample := repoFile(t, "listgen", "testdata", "sample.json")
	dir := t.TempDir()
	pf, ex := filepath.Join(dir, "policy"), filepath.Join(dir, "exim")
	_, errOut, code := execCLI(t, "list", "render", "--postfix", pf, "--exim", ex, "--now", "2026-11-24T00:00:00Z", sample)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for file, golden := range map[string]string{pf: "sample.postfix", ex: "sample.exim"} {
		if !bytes.Equal(mustRead(t, file), mustRead(t, repoFile(t, "listgen", "testdata", golden))) {
			t.Errorf("%s differs from listgen/testdata/%s", file, golden)
		}
	}
	// Expired: an empty policy is written and the exit status is 1.
	out, _, code := execCLI(t, "list", "render", "--postfix", "-", "--now", "2027-01-01T00:00:00Z", sample)
	if code != exitFindings || !strings.Contains(out, "NOT ENFORCED") {
		t.Errorf("expired: exit %d, output:\n%s", code, out)
	}
	out, _, code = execCLI(t, "list", "render", "--exim-snippet", "/etc/exim4/starttls-policy")
	if code != exitOK || !strings.Contains(out, "hosts_require_tls") {
		t.Errorf("--exim-snippet: exit %d:\n%s", code, out)
	}
	out, _, code = execCLI(t, "list", "render", "--postfix-main-cf", "hash:/etc/postfix/starttls-policy")
	if code != exitOK || !strings.Contains(out, "smtp_tls_policy_maps = hash:/etc/postfix/starttls-policy") {
		t.Errorf("--postfix-main-cf: exit %d:\n%s", code, out)
	}
	if _, _, code := execCLI(t, "list", "lint", filepath.Join(t.TempDir(), "missing.json")); code != exitUsage {
		t.Errorf("missing file: exit %d, want 2", code)
	}
	if _, _, code := execCLI(t, "list", "render", sample); code != exitUsage {
		t.Errorf("no output flag: exit %d, want 2", code)
	}
}

// TestListLintAllowTestTLD: list lint follows list.allow_test_tld, as the
// doors and the list builder do, so a lab's list of ".test" names lints
// clean only where the operator admits them.
func TestListLintAllowTestTLD(t *testing.T) {
	good := mustRead(t, repoFile(t, "listgen", "testdata", "sample.json"))
	l, err := listgen.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	renamed := make(map[string]listgen.Policy, len(l.Policies))
	for name, p := range l.Policies {
		renamed[name+".test"] = p
	}
	l.Policies = renamed
	b, err := listgen.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	file := writeTemp(t, "policy-list.json", b)
	for _, tt := range []struct {
		allow    string
		wantCode int
	}{{"true", exitOK}, {"false", exitFindings}} {
		t.Run("allow_test_tld="+tt.allow, func(t *testing.T) {
			t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", tt.allow)
			out, errOut, code := execCLI(t, "list", "lint", file)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stdout %s stderr %s", code, tt.wantCode, out, errOut)
			}
			if tt.wantCode != exitOK && !strings.Contains(out, "domain.unknown_tld") {
				t.Errorf("output lacks domain.unknown_tld:\n%s", out)
			}
		})
	}
}
