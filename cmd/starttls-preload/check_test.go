package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/internal/lab"
)

// checkLab is a DNS server and two MX hosts on one port: good.test passes,
// bad.test has no STARTTLS.
type checkLab struct {
	dns    *lab.DNS
	port   string
	caFile string
	good   *lab.MX
}

func newCheckLab(t *testing.T) *checkLab {
	// The lab's names are RFC 6761 ".test" names (list.allow_test_tld).
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	pki := lab.NewPKI(t)
	d := lab.NewDNS(t, "127.0.0.1:0")
	cert := pki.Leaf("mx.good.test")
	good := lab.NewMX(t, "127.0.0.2:0", lab.ModeGood, &cert)
	_, port, _ := net.SplitHostPort(good.Addr())
	lab.NewMX(t, "127.0.0.3:"+port, lab.ModeNoSTARTTLS, nil)
	d.Add(
		"good.test. 300 IN MX 10 mx.good.test.",
		"mx.good.test. 300 IN A 127.0.0.2",
		"also-good.test. 300 IN MX 10 mx.good.test.",
		"bad.test. 300 IN MX 10 mx.bad.test.",
		"mx.bad.test. 300 IN A 127.0.0.3",
	)
	return &checkLab{dns: d, port: port, caFile: pki.WriteRootPEM(t), good: good}
}

func (l *checkLab) args(extra ...string) []string {
	return append([]string{"check", "--resolver", l.dns.Addr(), "--ca-file", l.caFile, "--allow-private",
		"--smtp-port", l.port, "--timeout", "10s"}, extra...)
}

// execute runs the command line as main does and returns stdout and the
// exit status.
func execute(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t.Chdir(t.TempDir()) // no starttls-preload.yaml from the working directory
	// Labs use RFC 6761 ".test" names: admit them (list.allow_test_tld)
	// unless the test decided.
	if _, ok := os.LookupEnv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD"); !ok {
		t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	}
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	code := exitOK
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
			stderr.WriteString(ee.msg)
		} else {
			code = exitUsage
			stderr.WriteString(err.Error())
		}
	}
	return stdout.String(), stderr.String(), code
}

func TestCheckCommandJSON(t *testing.T) {
	l := newCheckLab(t)
	out, errOut, code := execute(t, l.args("--json", "good.test", "bad.test")...)
	if code != exitFindings {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), out)
	}
	want := []struct {
		domain   string
		eligible bool
		code     string
	}{{"good.test", true, ""}, {"bad.test", false, "starttls.not_offered"}}
	for i, line := range lines {
		// The shape other tools rely on.
		var obj struct {
			Domain   *string `json:"domain"`
			Eligible *bool   `json:"eligible"`
			MXs      []struct {
				Host      string `json:"host"`
				Addresses []struct {
					IP string `json:"ip"`
					OK bool   `json:"ok"`
				} `json:"addresses"`
			} `json:"mxs"`
			Findings []map[string]any `json:"findings"`
		}
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if obj.Domain == nil || *obj.Domain != want[i].domain || obj.Eligible == nil || *obj.Eligible != want[i].eligible {
			t.Errorf("line %d: %s", i, line)
		}
		if len(obj.MXs) != 1 || len(obj.MXs[0].Addresses) != 1 || obj.MXs[0].Addresses[0].OK != want[i].eligible {
			t.Errorf("line %d mxs: %s", i, line)
		}
		var codes []string
		for _, f := range obj.Findings {
			for _, k := range []string{"code", "severity", "summary", "message"} {
				if _, ok := f[k]; !ok {
					t.Errorf("line %d: finding without %s: %v", i, k, f)
				}
			}
			codes = append(codes, f["code"].(string))
		}
		if want[i].code != "" && !strings.Contains(strings.Join(codes, " "), want[i].code) {
			t.Errorf("line %d: codes %v, want %s", i, codes, want[i].code)
		}
		if !strings.Contains(line, `"findings":[`) || !strings.Contains(line, `"mxs":[`) {
			t.Errorf("line %d: findings or mxs not an array: %s", i, line)
		}
	}
}

func TestCheckCommandReport(t *testing.T) {
	l := newCheckLab(t)
	out, errOut, code := execute(t, l.args("good.test")...)
	if code != exitOK {
		t.Fatalf("exit %d, want 0; stderr %s", code, errOut)
	}
	for _, want := range []string{"good.test: eligible", "MX 10 mx.good.test", "127.0.0.2", "ok", "TLS 1.3", "CN=mx.good.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	out, _, code = execute(t, l.args("bad.test")...)
	if code != exitFindings || !strings.Contains(out, "bad.test: NOT eligible") || !strings.Contains(out, "starttls.not_offered") {
		t.Errorf("exit %d, report:\n%s", code, out)
	}
}

func TestCheckCommandDomainsFile(t *testing.T) {
	l := newCheckLab(t)
	file := filepath.Join(t.TempDir(), "domains.txt")
	os.WriteFile(file, []byte("# test domains\ngood.test\n\nalso-good.test  # shares the MX\nbad.test\n"), 0o644)
	out, errOut, code := execute(t, l.args("--json", "--concurrency", "2", "--domains-file", file)...)
	if code != exitFindings {
		t.Fatalf("exit %d, want 1; stderr %s", code, errOut)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r struct {
			Domain   string `json:"domain"`
			Eligible bool   `json:"eligible"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Domain+"="+strconv.FormatBool(r.Eligible))
	}
	if strings.Join(got, " ") != "good.test=true also-good.test=true bad.test=false" {
		t.Errorf("results %v, want input order", got)
	}
	os.WriteFile(file, []byte("good.test\nalso-good.test\n"), 0o644)
	if _, errOut, code := execute(t, l.args("--json", "--domains-file", file)...); code != exitOK {
		t.Errorf("all eligible: exit %d, want 0; %s", code, errOut)
	}
}

func TestCheckCommandUsage(t *testing.T) {
	l := newCheckLab(t)
	tests := []struct {
		name string
		args []string
	}{
		{"no domain", l.args()},
		{"bad timeout", l.args("--timeout", "soon", "good.test")},
		{"not a domain", l.args("not a domain")},
		{"missing CA file", append(l.args("good.test"), "--ca-file", "/nonexistent/ca.pem")},
		{"missing domains file", l.args("--domains-file", "/nonexistent/domains.txt")},
		{"zero concurrency", l.args("--concurrency", "0", "good.test")},
		{"unknown flag", l.args("--frobnicate", "good.test")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := execute(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want 2; stderr %q", code, errOut)
			}
			if strings.Contains(strings.TrimSpace(errOut), "\n") {
				t.Errorf("stderr is not one line: %q", errOut)
			}
		})
	}
}

// A file named "starttls-preload" (the binary, where it was built) in the
// working directory is not a config file.
func TestCheckCommandIgnoresBinaryInWorkingDir(t *testing.T) {
	l := newCheckLab(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "starttls-preload"), []byte("\x7fELF\x02\x01\x01\x00binary"), 0o755)
	t.Chdir(dir)
	root := newRootCmd()
	var stdout bytes.Buffer
	root.SetArgs(l.args("--json", "good.test"))
	root.SetOut(&stdout)
	if err := root.ExecuteContext(t.Context()); err != nil {
		t.Fatalf("check failed: %v", err)
	}
}

func TestCheckCommandStdin(t *testing.T) {
	l := newCheckLab(t)
	t.Chdir(t.TempDir())
	root := newRootCmd()
	var stdout bytes.Buffer
	root.SetArgs(l.args("--json", "--domains-file", "-"))
	root.SetIn(strings.NewReader("good.test\nbad.test\n"))
	root.SetOut(&stdout)
	err := root.ExecuteContext(t.Context())
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitFindings {
		t.Fatalf("err = %v, want exit 1", err)
	}
	if n := strings.Count(stdout.String(), "\n"); n != 2 {
		t.Errorf("%d result lines, want 2:\n%s", n, stdout.String())
	}
}

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, 3)
	p.add(true)
	p.add(false)
	p.add(true)
	p.finish()
	p.finish() // idempotent
	out := buf.String()
	if !strings.Contains(out, "3/3 domains, 2 eligible") || !strings.Contains(out, "[##############################]") || strings.Count(out, "\n") != 1 {
		t.Errorf("progress output %q", out)
	}
}

func TestCheckCommandInvalidLineInFile(t *testing.T) {
	l := newCheckLab(t)
	file := filepath.Join(t.TempDir(), "domains.txt")
	os.WriteFile(file, []byte("good.test\nnot a domain\n"), 0o644)
	out, errOut, code := execute(t, l.args("--json", "--domains-file", file)...)
	if code != exitFindings || !strings.Contains(errOut, "1 invalid domain name") {
		t.Errorf("exit %d stderr %q, want 1 and a count of invalid names", code, errOut)
	}
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"domain":"good.test"`) {
		t.Errorf("output %q, want the valid domain's result only", out)
	}
}

// TestCheckCommandHELOName: the EHLO name comes from --helo-name, or the
// validate.helo_name key (here from the environment); one that is not a
// host name or address literal is a usage error.
func TestCheckCommandHELOName(t *testing.T) {
	l := newCheckLab(t)
	if _, errOut, code := execute(t, l.args("--helo-name", "probe.checker.example", "good.test")...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_HELO_NAME", "[192.0.2.25]")
	if _, errOut, code := execute(t, l.args("good.test")...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	// Before and after STARTTLS, each time.
	want := []string{"probe.checker.example", "probe.checker.example", "[192.0.2.25]", "[192.0.2.25]"}
	if got := l.good.HELOs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("EHLO names = %q, want %q", got, want)
	}
	_, errOut, code := execute(t, l.args("--helo-name", "bad name", "good.test")...)
	if code != exitUsage || !strings.Contains(errOut, "HELO name") {
		t.Errorf("bad --helo-name: exit %d, stderr %q; want 2 and a clear line", code, errOut)
	}
}
