package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
)

func init() { register(newListCmd) }

func newListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "Lint, import and render policy lists (policy-list.json)",
		Long: `list works on policy list files: the format is specified in the listgen
package documentation (go doc github.com/starttls-preload/starttls-preload/listgen).`,
	}
	cmd.AddCommand(newListLintCmd(), newListImportEFFCmd(), newListRenderCmd())
	return cmd
}

func newListLintCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lint FILE...",
		Short: "Check policy lists strictly; exit 1 on any problem",
		Long: `lint parses each list strictly (size cap, unknown or duplicate fields
rejected) and checks every domain (a registrable name, not a public suffix),
alias and MX pattern, the dates and the canonical form. Each problem is
printed with its JSON path and a stable code; the exit status is 1 when there
is any. --fix rewrites a list that parses into its canonical form. With
list.allow_test_tld (STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD=true), RFC 6761
".test" names are admitted, as the service admits them in labs.`,
		Example: `  starttls-preload list lint policy-list.json
  starttls-preload list lint --json policy-list.json | jq .
  starttls-preload list lint --fix policy-list.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: runListLint,
	}
	cmd.Flags().Bool("json", false, "print the problems as one JSON array per file")
	cmd.Flags().Bool("fix", false, "rewrite each list that parses in canonical form")
	return cmd
}

func runListLint(cmd *cobra.Command, args []string) error {
	asJSON, _ := cmd.Flags().GetBool("json")
	fix, _ := cmd.Flags().GetBool("fix")
	out := cmd.OutOrStdout()
	names, err := nameOptions(cmd)
	if err != nil {
		return err
	}
	total := 0
	for _, path := range args {
		b, err := readListFile(path)
		if err != nil {
			return err
		}
		if fix {
			if b, err = fixList(path, b); err != nil {
				return err
			}
		}
		ps := listgen.LintBytesWith(b, listgen.LintOptions{AllowTestTLD: names.AllowTestTLD})
		total += len(ps)
		if asJSON {
			if ps == nil {
				ps = []listgen.Problem{}
			}
			enc := json.NewEncoder(out)
			if err := enc.Encode(struct {
				File     string            `json:"file"`
				Problems []listgen.Problem `json:"problems"`
			}{path, ps}); err != nil {
				return err
			}
			continue
		}
		for _, p := range ps {
			fmt.Fprintf(out, "%s: %s\n", path, p)
		}
	}
	if total > 0 {
		return failf("%d problem(s) found", total)
	}
	return nil
}

// fixList rewrites a list that parses in canonical form and returns the
// new bytes.
func fixList(path string, b []byte) ([]byte, error) {
	l, err := listgen.Parse(b)
	if err != nil {
		return b, nil // lint reports it
	}
	m, err := listgen.Marshal(l)
	if err != nil {
		return b, nil
	}
	if string(m) == string(b) {
		return b, nil
	}
	if err := writeFileAtomic(path, m, 0o644); err != nil {
		return nil, failf("%v", err)
	}
	slog.Info("rewrote in canonical form", "file", path)
	return m, nil
}

func newListImportEFFCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import-eff FILE",
		Short: "Convert an EFF STARTTLS Everywhere list (v0.1) to this format",
		Long: `import-eff reads an EFF STARTTLS Everywhere policy list (version 0.1; dates
as RFC 3339 strings or epoch seconds) and writes the same policies in this
project's canonical format to standard output. The same input always gives
the same bytes. Names become lower-case A-labels and an MX suffix
".example.net" becomes "*.example.net" (exactly one more label).`,
		Example: `  starttls-preload list import-eff policy.json > policy-list.json
  starttls-preload list import-eff --serial 7 - < policy.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			serial, _ := cmd.Flags().GetInt64("serial")
			if serial < 0 {
				return usagef("--serial must not be negative")
			}
			b, err := readListFile(args[0])
			if err != nil {
				return err
			}
			l, err := listgen.ImportEFF(b, serial)
			if err != nil {
				return failf("%s: %v", args[0], err)
			}
			m, err := listgen.Marshal(l)
			if err != nil {
				return failf("%s: %v", args[0], err)
			}
			_, err = cmd.OutOrStdout().Write(m)
			return err
		},
	}
	cmd.Flags().Int64("serial", 1, "serial of the new list")
	return cmd
}

func newListRenderCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "render FILE",
		Short: "Write the Postfix policy table and/or the Exim lookup file for a list",
		Long: `render writes the configuration that makes an MTA enforce the list:
--postfix an smtp_tls_policy_maps table (compile it with postmap for a hash:
table), --exim an lsearch file for the transport options that --exim-snippet
prints. "testing" policies are comments unless --early-adopter. A list that
has expired renders as an empty policy, and the exit status is then 1.

This command does not check signatures: fetch does, on MTA hosts.`,
		Example: `  starttls-preload list render --postfix /etc/postfix/starttls-policy policy-list.json
  postmap hash:/etc/postfix/starttls-policy
  starttls-preload list render --postfix-main-cf hash:/etc/postfix/starttls-policy

  starttls-preload list render --exim /etc/exim4/starttls-policy policy-list.json
  starttls-preload list render --exim-snippet /etc/exim4/starttls-policy`,
		Args: cobra.MaximumNArgs(1),
		RunE: runListRender,
	}
	f := cmd.Flags()
	f.String("postfix", "", "write the Postfix table to this file (- for standard output)")
	f.String("exim", "", "write the Exim lsearch file to this file (- for standard output)")
	f.Bool("early-adopter", false, "enforce testing policies too")
	f.String("ca-file", "", "trust anchors for Exim's certificate checks (default: the system's)")
	f.String("now", "", "render as of this time (RFC 3339; default: now)")
	f.String("postfix-main-cf", "", "print the main.cf lines for this TYPE:FILE table and exit")
	f.String("exim-snippet", "", "print the Exim transport options for this lookup file and exit")
	return cmd
}

func runListRender(cmd *cobra.Command, args []string) error {
	f := cmd.Flags()
	out := cmd.OutOrStdout()
	if m, _ := f.GetString("postfix-main-cf"); m != "" {
		ca, _ := f.GetString("ca-file")
		_, err := io.WriteString(out, listgen.PostfixMainCF(m, ca))
		return err
	}
	if p, _ := f.GetString("exim-snippet"); p != "" {
		_, err := io.WriteString(out, listgen.EximTransportSnippet(p))
		return err
	}
	pf, _ := f.GetString("postfix")
	ex, _ := f.GetString("exim")
	if len(args) != 1 {
		return usagef("give the list FILE (see %s --help)", cmd.CommandPath())
	}
	if pf == "" && ex == "" {
		return usagef("nothing to write: give --postfix and/or --exim")
	}
	o := listgen.RenderOptions{Now: time.Now()}
	o.EarlyAdopter, _ = f.GetBool("early-adopter")
	o.CAFile, _ = f.GetString("ca-file")
	if s, _ := f.GetString("now"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return usagef("--now: %v", err)
		}
		o.Now = t
	}
	b, err := readListFile(args[0])
	if err != nil {
		return err
	}
	l, err := listgen.Parse(b)
	if err != nil {
		return failf("%s: %v", args[0], err)
	}
	var pfData, exData []byte
	switch {
	case pf != "" && ex != "":
		pfData, exData = listgen.Render(l, o)
	case pf != "":
		pfData = listgen.RenderPostfix(l, o)
	default:
		exData = listgen.RenderExim(l, o)
	}
	if pf != "" {
		if err := writeOutput(out, pf, pfData); err != nil {
			return err
		}
	}
	if ex != "" {
		if err := writeOutput(out, ex, exData); err != nil {
			return err
		}
	}
	if !o.Now.Before(l.Expires) {
		return failf("%s expired at %s: wrote an empty policy", args[0], l.Expires.UTC().Format(time.RFC3339))
	}
	return nil
}

// readListFile reads a list (or key, or signature) file, at most
// listgen.MaxSize bytes; "-" is standard input.
func readListFile(path string) ([]byte, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, usagef("%v", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, listgen.MaxSize+1))
	if err != nil {
		return nil, failf("reading %s: %v", path, err)
	}
	if len(b) > listgen.MaxSize {
		return nil, failf("%s: larger than %d bytes", path, listgen.MaxSize)
	}
	return b, nil
}

func writeOutput(stdout io.Writer, path string, data []byte) error {
	if path == "-" {
		_, err := stdout.Write(data)
		return err
	}
	if err := writeFileAtomic(path, data, 0o644); err != nil {
		return failf("%v", err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it into place, so readers see the old or the new file, never part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
