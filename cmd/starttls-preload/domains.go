package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/store"
)

func init() { register(newDomainsCmd) }

func newDomainsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "domains",
		Short: "Add, remove and inspect the domains in the store",
		Long: `domains works on the configured store (the SQLite file under the data
directory, or PostgreSQL when store.driver is postgres), so an operator can
run and inspect the list without the web form.`,
		Example: `  starttls-preload domains add example.com --mx mx1.example.com --mx '*.mail.example.net' --contact postmaster@example.com --skip-ownership
  starttls-preload domains list --json
  starttls-preload domains show example.com
  starttls-preload domains remove example.com`,
	}
	cmd.PersistentFlags().String("data-dir", "./data", "data directory (the SQLite store lives there unless store.driver is postgres)")
	cmd.AddCommand(newDomainsAddCmd(), newDomainsRemoveCmd(), newDomainsListCmd(), newDomainsShowCmd(), newDomainsOptOutCmd())
	return cmd
}

// withStore loads the configuration, opens the store and runs f.
func withStore(cmd *cobra.Command, f func(ctx context.Context, c *Config, st store.Store) error) error {
	c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir"})
	if err != nil {
		return err
	}
	st, err := openStore(cmd.Context(), c)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(cmd.Context(), c, st)
}

// domainArg normalises the DOMAIN argument with listgen.ParseDomain, the
// one normaliser (list.allow_test_tld admits ".test").
func domainArg(cmd *cobra.Command, s string) (string, error) {
	o, err := nameOptions(cmd)
	if err != nil {
		return "", err
	}
	name, err := listgen.ParseDomain(s, o)
	if err != nil {
		return "", nameUsageError(err)
	}
	return name, nil
}

func newDomainsAddCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add DOMAIN --mx PATTERN...",
		Short: "Add a domain (or declare its MX patterns again)",
		Long: `add puts a domain in the store with its MX patterns (a host name, or
"*.example.net" for any one label under example.net, as MTA-STS writes
them). Without --skip-ownership the domain waits in pending until its
ownership is proven: add prints the TXT record to publish, which the
service checks until the proof expires. With it, checks start at the next
round. A pending or removed domain added again gets a new proof; a domain
being checked or listed has its patterns (and contact) declared again with
--skip-ownership, as a domain demoted for an MX outside its patterns must.`,
		Example: `  starttls-preload domains add example.com --mx mx1.example.com --mx mx2.example.com --skip-ownership
  starttls-preload domains add example.org --mx '*.mail.protection.example.net' --contact postmaster@example.org --enforce`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := domainArg(cmd, args[0])
			if err != nil {
				return err
			}
			mxs, _ := cmd.Flags().GetStringSlice("mx")
			contact, _ := cmd.Flags().GetString("contact")
			skip, _ := cmd.Flags().GetBool("skip-ownership")
			enforce, _ := cmd.Flags().GetBool("enforce")
			follow, _ := cmd.Flags().GetBool("follow-mta-sts")
			r := lifecycle.Request{Domain: name, Contact: contact, WantEnforce: enforce, FollowMTASTS: follow, MXPatterns: mxs, Source: "operator"}
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				lc := &lifecycle.Lifecycle{Store: st}
				w := cmd.OutOrStdout()
				if skip {
					ch, err := lc.AdmitProven(ctx, r, lifecycle.Evidence{By: lifecycle.ByOperator, Detail: "added by an operator; ownership not checked"})
					if err != nil {
						return lifecycleErr(name, err)
					}
					printAdded(w, name, ch.From, ch.To, mxs)
					return nil
				}
				p, err := lc.Submit(ctx, r)
				if err != nil {
					return lifecycleErr(name, err)
				}
				printAdded(w, name, p.Previous, store.StatePending, mxs)
				fmt.Fprintf(w, "  prove ownership: publish TXT %s %q (checked by the service until %s), or add it with --skip-ownership\n",
					p.DNSName, p.DNSValue, p.Expires.UTC().Format(time.RFC3339))
				return nil
			})
		},
	}
	cmd.Flags().StringSlice("mx", nil, "MX pattern (repeat, or comma-separated)")
	cmd.Flags().String("contact", "", "e-mail address told about failures")
	cmd.Flags().Bool("skip-ownership", false, "start checks without proof of ownership")
	cmd.Flags().Bool("enforce", false, "ask for promotion to enforce after the promotion period")
	cmd.Flags().Bool("follow-mta-sts", false, "let the patterns follow the domain's MTA-STS mx list (mode enforce)")
	return cmd
}

// printAdded says what add did to a domain that was in state from ("":
// new) and is now in state to.
func printAdded(w io.Writer, name string, from, to store.State, mxs []string) {
	switch {
	case from == "" && to == admission.Validating:
		fmt.Fprintf(w, "%s added: validating (checks start at the next round)\n", name)
	case from == "":
		fmt.Fprintf(w, "%s added: pending until its ownership is proven\n", name)
	case from == admission.Removed || from == admission.RemovalRequested:
		fmt.Fprintf(w, "%s added again: %s\n", name, to)
	case from == to:
		fmt.Fprintf(w, "%s: MX patterns declared again (%s); state %s\n", name, strings.Join(mxs, " "), to)
	default:
		fmt.Fprintf(w, "%s: MX patterns declared again (%s); %s → %s\n", name, strings.Join(mxs, " "), from, to)
	}
}

// lifecycleErr turns a lifecycle error into the command's exit: bad input
// is a usage error, a refusal a failure.
func lifecycleErr(name string, err error) error {
	switch {
	case errors.Is(err, lifecycle.ErrInvalidRequest):
		return usagef("%v", err)
	case errors.Is(err, lifecycle.ErrNotFound):
		return failf("%s is not in the store", name)
	case errors.Is(err, lifecycle.ErrAlreadyRemoved):
		return failf("%s was already removed", name)
	case errors.Is(err, lifecycle.ErrAlreadyActive):
		return failf("%s is already being checked or listed; declare its patterns again with --skip-ownership", name)
	}
	return failf("%s: %v", name, err)
}

func newDomainsRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove DOMAIN",
		Short:   "Ask for a domain's removal: it leaves the next list",
		Example: `  starttls-preload domains remove example.com`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := domainArg(cmd, args[0])
			if err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				lc := &lifecycle.Lifecycle{Store: st}
				if _, err := lc.RemoveProven(ctx, name, lifecycle.Evidence{By: lifecycle.ByOperator, Detail: "by an operator"}); err != nil {
					return lifecycleErr(name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: removal requested; it leaves the next list\n", name)
				return nil
			})
		},
	}
}

func newDomainsOptOutCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "opt-out DOMAIN",
		Short: "Never probe a domain's mail servers (or, with --undo, allow it again)",
		Long: `opt-out puts a domain on the never-probe list: rounds skip it, whatever its
state, so its operators are never contacted by the checker. Listed domains
that opt out stop being re-checked; remove them too to take them off the
list.`,
		Example: `  starttls-preload domains opt-out example.com --reason "asked by postmaster@example.com"
  starttls-preload domains opt-out example.com --undo`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := domainArg(cmd, args[0])
			if err != nil {
				return err
			}
			undo, _ := cmd.Flags().GetBool("undo")
			reason, _ := cmd.Flags().GetString("reason")
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				if undo {
					if err := st.RemoveOptOut(ctx, name); err != nil {
						return failf("opt-in %s: %v", name, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s may be probed again\n", name)
					return nil
				}
				if err := st.AddOptOut(ctx, name, reason, time.Now()); err != nil {
					return failf("opt-out %s: %v", name, err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s is never probed\n", name)
				return nil
			})
		},
	}
	cmd.Flags().Bool("undo", false, "take the domain off the never-probe list")
	cmd.Flags().String("reason", "", "why (kept with the entry)")
	return cmd
}

func newDomainsListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the domains with their state and progress",
		Example: `  starttls-preload domains list
  starttls-preload domains list --state enforce --state testing --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			asJSON, _ := cmd.Flags().GetBool("json")
			states, _ := cmd.Flags().GetStringSlice("state")
			var filter store.Filter
			for _, s := range states {
				st := store.State(s)
				if !st.Valid() {
					return usagef("--state %q is not a state", s)
				}
				filter.States = append(filter.States, st)
			}
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				doms, err := st.ListDomains(ctx, filter)
				if err != nil {
					return failf("listing domains: %v", err)
				}
				rules := rulesOf(c)
				out := make([]admission.Status, 0, len(doms))
				for _, d := range doms {
					out = append(out, admission.StatusOf(d, rules))
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return writeJSONOut(w, out)
				}
				return printStatuses(w, out)
			})
		},
	}
	cmd.Flags().Bool("json", false, "print a JSON array")
	cmd.Flags().StringSlice("state", nil, "only domains in this state (repeat)")
	return cmd
}

func newDomainsShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show DOMAIN",
		Short: "Show a domain's state, recent checks and every decision with its reason",
		Example: `  starttls-preload domains show example.com
  starttls-preload domains show example.com --json --checks 100`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := domainArg(cmd, args[0])
			if err != nil {
				return err
			}
			asJSON, _ := cmd.Flags().GetBool("json")
			limit, _ := cmd.Flags().GetInt("checks")
			if limit < 0 {
				return usagef("--checks must not be negative")
			}
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				d, err := admission.DetailOf(ctx, st, rulesOf(c), name, limit)
				if errors.Is(err, store.ErrNotFound) {
					return failf("%s is not in the store", name)
				}
				if err != nil {
					return failf("reading %s: %v", name, err)
				}
				w := cmd.OutOrStdout()
				if asJSON {
					return writeJSONOut(w, d)
				}
				printDetail(w, d)
				return nil
			})
		},
	}
	cmd.Flags().Bool("json", false, "print JSON")
	cmd.Flags().Int("checks", 20, "how many of the latest checks to show")
	return cmd
}

// printStatuses writes the domains as a table.
func printStatuses(w io.Writer, out []admission.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DOMAIN\tSTATE\tCHECKS\tLAST CHECKED\tMX PATTERNS")
	for _, s := range out {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Domain, s.State, checksProgress(s), timeOrNever(s.LastChecked), strings.Join(s.MXPatterns, " "))
	}
	return tw.Flush()
}

func printDetail(w io.Writer, d admission.Detail) {
	fmt.Fprintf(w, "domain:        %s\n", d.Domain)
	fmt.Fprintf(w, "state:         %s", d.State)
	if d.ListedAs != "" {
		fmt.Fprintf(w, " (listed as %s)", d.ListedAs)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "mx patterns:   %s\n", strings.Join(d.MXPatterns, " "))
	fmt.Fprintf(w, "checks:        %s\n", checksProgress(d.Status))
	fmt.Fprintf(w, "last checked:  %s\n", timeOrNever(d.LastChecked))
	if d.FailingSince != nil {
		fmt.Fprintf(w, "failing since: %s\n", d.FailingSince.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(w, "next check:    %s\n", d.NextCheck.UTC().Format(time.RFC3339))
	fmt.Fprintln(w, "\ndecisions:")
	if len(d.Decisions) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, dec := range d.Decisions {
		fmt.Fprintf(w, "  %s  %s → %s  %s\n", dec.At.UTC().Format(time.RFC3339), dec.From, dec.To, dec.Reason)
	}
	fmt.Fprintln(w, "\nchecks (newest first):")
	if len(d.Checks) == 0 {
		fmt.Fprintln(w, "  none")
	}
	for _, c := range d.Checks {
		verdict := "pass"
		if !c.Eligible {
			verdict = "FAIL"
		}
		var fs []struct {
			Code     string `json:"code"`
			Severity string `json:"severity"`
		}
		_ = json.Unmarshal(c.Findings, &fs)
		var codes []string
		for _, f := range fs {
			if f.Severity == "error" {
				codes = append(codes, f.Code)
			}
		}
		line := fmt.Sprintf("  %s  %s  mx=%s  %s", c.At.UTC().Format(time.RFC3339), verdict, strings.Join(c.MXHosts, ","), strings.Join(codes, " "))
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func checksProgress(s admission.Status) string {
	if s.ChecksNeeded > 0 {
		return fmt.Sprintf("%d/%d", s.ChecksPassed, s.ChecksNeeded)
	}
	return fmt.Sprintf("%d", s.ChecksPassed)
}

func timeOrNever(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
