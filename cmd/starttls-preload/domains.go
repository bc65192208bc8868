package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/admission"
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

func domainArg(s string) (string, error) {
	name, err := listgen.NormalizeName(s)
	if err != nil {
		return "", usagef("not a domain name: %v", err)
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
ownership is proven; with it, checks start at the next round. For a domain
already in the store, add declares its patterns (and contact) again, as a
domain demoted for an MX outside its patterns must.`,
		Example: `  starttls-preload domains add example.com --mx mx1.example.com --mx mx2.example.com --skip-ownership
  starttls-preload domains add example.org --mx '*.mail.protection.example.net' --contact postmaster@example.org --enforce`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := domainArg(args[0])
			if err != nil {
				return err
			}
			mxs, _ := cmd.Flags().GetStringSlice("mx")
			if len(mxs) == 0 {
				return usagef("at least one --mx PATTERN is needed")
			}
			patterns, err := admission.NormalizePatterns(mxs)
			if err != nil {
				return usagef("%v", err)
			}
			contact, _ := cmd.Flags().GetString("contact")
			if contact != "" {
				if _, err := mail.ParseAddress(contact); err != nil {
					return usagef("--contact %q is not an e-mail address", contact)
				}
			}
			skip, _ := cmd.Flags().GetBool("skip-ownership")
			enforce, _ := cmd.Flags().GetBool("enforce")
			follow, _ := cmd.Flags().GetBool("follow-mta-sts")
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				now := time.Now()
				d := store.Domain{Name: name, State: admission.Pending, Contact: contact, MXPatterns: patterns,
					WantEnforce: enforce, FollowMTASTS: follow, NextCheck: now, CreatedAt: now}
				err := st.AddDomain(ctx, d)
				if errors.Is(err, store.ErrAlreadyExists) {
					return redeclare(ctx, cmd.OutOrStdout(), st, d, skip, now)
				}
				if err != nil {
					return failf("adding %s: %v", name, err)
				}
				if skip {
					if err := st.Transition(ctx, name, admission.Pending, admission.Validating,
						admission.CodeAddedByOperator+": added by an operator; ownership not checked", now); err != nil {
						return failf("adding %s: %v", name, err)
					}
					fmt.Fprintf(cmd.OutOrStdout(), "%s added: validating (checks start at the next round)\n", name)
					return nil
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s added: pending until its ownership is proven\n", name)
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

// redeclare updates an existing domain's patterns and contact; a removed
// domain starts again.
func redeclare(ctx context.Context, w io.Writer, st store.Store, d store.Domain, skip bool, now time.Time) error {
	cur, err := st.GetDomain(ctx, d.Name)
	if err != nil {
		return failf("reading %s: %v", d.Name, err)
	}
	cur.MXPatterns, cur.WantEnforce, cur.FollowMTASTS = d.MXPatterns, d.WantEnforce, d.FollowMTASTS
	if d.Contact != "" {
		cur.Contact = d.Contact
	}
	cur.UpdatedAt = now
	if cur.State == admission.Removed || cur.State == admission.RemovalRequested {
		to := admission.Pending
		if skip {
			to = admission.Validating
		}
		cur.NextCheck, cur.ChecksPassed, cur.PassingSince, cur.FailingSince = now, 0, nil, nil
		if err := st.UpdateDomain(ctx, cur); err != nil {
			return failf("updating %s: %v", d.Name, err)
		}
		if err := st.Transition(ctx, d.Name, cur.State, to, admission.CodeAddedByOperator+": added again by an operator", now); err != nil {
			return failf("adding %s again: %v", d.Name, err)
		}
		fmt.Fprintf(w, "%s added again: %s\n", d.Name, to)
		return nil
	}
	if err := st.UpdateDomain(ctx, cur); err != nil {
		return failf("updating %s: %v", d.Name, err)
	}
	fmt.Fprintf(w, "%s: MX patterns declared again (%s); state %s\n", d.Name, strings.Join(d.MXPatterns, " "), cur.State)
	return nil
}

func newDomainsRemoveCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "remove DOMAIN",
		Short:   "Ask for a domain's removal: it leaves the next list",
		Example: `  starttls-preload domains remove example.com`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := domainArg(args[0])
			if err != nil {
				return err
			}
			return withStore(cmd, func(ctx context.Context, c *Config, st store.Store) error {
				err := st.RequestRemoval(ctx, name, admission.CodeRequested+": by an operator", time.Now())
				switch {
				case errors.Is(err, store.ErrNotFound):
					return failf("%s is not in the store", name)
				case errors.Is(err, store.ErrConflict):
					return failf("%s was already removed", name)
				case err != nil:
					return failf("removing %s: %v", name, err)
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
			name, err := domainArg(args[0])
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
			name, err := domainArg(args[0])
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
