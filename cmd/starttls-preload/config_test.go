package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// newConfigTestCmd is a command with the root's --config flag and one
// validate flag, as the real commands bind them.
func newConfigTestCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "t"}
	cmd.Flags().String("config", "", "")
	cmd.Flags().Duration("timeout", 0, "")
	return cmd
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "starttls-preload.yaml")
	if err := os.WriteFile(file, []byte("validate:\n  timeout: 11s\n  resolver: 127.0.0.1:5353\nadmission:\n  min_checks: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		flag    string
		want    time.Duration
		wantRes string
	}{
		{name: "file over default", want: 11 * time.Second, wantRes: "127.0.0.1:5353"},
		{name: "env over file", env: "12s", want: 12 * time.Second, wantRes: "127.0.0.1:5353"},
		{name: "flag over env", env: "12s", flag: "13s", want: 13 * time.Second, wantRes: "127.0.0.1:5353"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("STARTTLS_PRELOAD_VALIDATE_TIMEOUT", tt.env)
			}
			cmd := newConfigTestCmd()
			args := []string{"--config", file}
			if tt.flag != "" {
				args = append(args, "--timeout", tt.flag)
			}
			if err := cmd.ParseFlags(args); err != nil {
				t.Fatal(err)
			}
			c, err := loadConfig(cmd, map[string]string{"validate.timeout": "timeout"})
			if err != nil {
				t.Fatal(err)
			}
			if c.Validate.Timeout != tt.want {
				t.Errorf("validate.timeout = %v, want %v", c.Validate.Timeout, tt.want)
			}
			if c.Validate.Resolver != tt.wantRes {
				t.Errorf("validate.resolver = %q, want %q", c.Validate.Resolver, tt.wantRes)
			}
			if c.Admission.MinChecks != 3 || c.Admission.MinDays != 7 {
				t.Errorf("admission = %+v, want min_checks 3 from the file and min_days 7 by default", c.Admission)
			}
		})
	}
}

func TestLoadConfigMissingExplicitFile(t *testing.T) {
	cmd := newConfigTestCmd()
	if err := cmd.ParseFlags([]string{"--config", filepath.Join(t.TempDir(), "nope.yaml")}); err != nil {
		t.Fatal(err)
	}
	_, err := loadConfig(cmd, nil)
	ee, ok := err.(*exitError)
	if !ok || ee.code != exitUsage {
		t.Fatalf("err = %v, want a usage error", err)
	}
}

func TestEnvOnlyKey(t *testing.T) {
	t.Setenv("STARTTLS_PRELOAD_DEMOTION_GRACE", "2h")
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_ALLOW_PRIVATE", "true")
	cmd := newConfigTestCmd()
	t.Chdir(t.TempDir())
	c, err := loadConfig(cmd, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Demotion.Grace != 2*time.Hour || !c.Validate.AllowPrivate {
		t.Errorf("env not applied: grace %v allow_private %v", c.Demotion.Grace, c.Validate.AllowPrivate)
	}
}

// TestReadmeConfigurationTable checks that the README's configuration
// table names every key once, and only keys that exist.
func TestReadmeConfigurationTable(t *testing.T) {
	b, err := os.ReadFile(repoFile(t, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	seen := map[string]int{}
	for line := range strings.Lines(sec) {
		if k, ok := strings.CutPrefix(line, "| `"); ok {
			k, _, _ = strings.Cut(k, "`")
			seen[k]++
		}
	}
	v := viper.New()
	defaults(v)
	for _, k := range v.AllKeys() {
		if seen[k] != 1 {
			t.Errorf("key %s: %d rows in the README's table, want 1", k, seen[k])
		}
		delete(seen, k)
	}
	for k := range seen {
		t.Errorf("README's table names %s, which is no key", k)
	}
}
