package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/prdoor"
	"github.com/starttls-preload/starttls-preload/validate"
)

func init() { register(newPRCheckCmd) }

func newPRCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pr-check [flags]",
		Short: "Answer a pull request that changes policy-list.json: checks, ownership proofs, one comment, a commit status",
		Long: `pr-check reads policy-list.json at a pull request's base and head commits
through GitHub's REST API, as data (it never checks out or runs anything from
the pull request), lints the head, and for each added or changed domain runs
the full check and looks for the ownership proof: a TXT record

    _starttls-preload.<domain>  "<repository URL>/pull/<N>"

naming this pull request. Removals need the same proof or the maintainers'
label (list.removal_label, default removal-approved). The answer is one
comment on the pull request, found by a hidden marker and edited on every run,
and a commit status "starttls-preload/pr-check" on the head commit.

In GitHub Actions it is configured by GITHUB_API_URL, GITHUB_REPOSITORY,
GITHUB_TOKEN and GITHUB_EVENT_PATH (a pull_request or pull_request_target
event). Elsewhere pass --repo and --pr (and --api-url for GitHub Enterprise
Server) with the token in github.token (STARTTLS_PRELOAD_GITHUB_TOKEN) or
GITHUB_TOKEN. list.allow_test_tld admits RFC 6761 .test names (labs).

Exit status: 0 every changed domain passes and is proven (or nothing to
check), 1 not, or the API failed, 2 usage or configuration error.`,
		Example: `  # In a workflow (see .github/workflows/pr-check.yml)
  starttls-preload pr-check

  # By hand
  STARTTLS_PRELOAD_GITHUB_TOKEN=... starttls-preload pr-check --repo example/list --pr 42`,
		Args: cobra.NoArgs,
		RunE: runPRCheck,
	}
	f := cmd.Flags()
	f.String("repo", "", "repository OWNER/NAME (default github.repository, the event's, or GITHUB_REPOSITORY)")
	f.Int("pr", 0, "pull request number (default: the event's, from GITHUB_EVENT_PATH)")
	f.String("api-url", "", "REST API base URL (default github.api_url, GITHUB_API_URL or https://api.github.com)")
	f.String("removal-label", prcheck.DefaultRemovalLabel, "label by which maintainers approve a removal")
	f.Bool("allow-test-tld", false, "admit RFC 6761 .test names (labs only)")
	addCheckerFlags(cmd)
	return cmd
}

func runPRCheck(cmd *cobra.Command, _ []string) error {
	c, err := loadConfig(cmd, checkerFlagKeys(map[string]string{
		"github.repository":   "repo",
		"github.api_url":      "api-url",
		"list.removal_label":  "removal-label",
		"list.allow_test_tld": "allow-test-tld",
	}))
	if err != nil {
		return err
	}
	number, _ := cmd.Flags().GetInt("pr")
	gs, err := githubSettings(c, !cmd.Flags().Changed("repo"))
	if err != nil {
		return err
	}
	if number == 0 {
		number = gs.eventNumber
	}
	if number <= 0 {
		return usagef("no pull request: pass --pr N or run from a pull_request event (GITHUB_EVENT_PATH)")
	}
	v, err := newPRValidator(c)
	if err != nil {
		return err
	}
	door, err := newDoor(c, gs, v)
	if err != nil {
		return err
	}
	o, err := door.CheckPR(cmd.Context(), number)
	if err != nil {
		return failf("%v", err)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s: %s\n", o.URL, prdoorSummary(o))
	if !o.Success() {
		return &exitError{code: exitFindings}
	}
	return nil
}

func prdoorSummary(o *prdoor.Outcome) string {
	r := o.Report
	verdict := "not ready"
	if o.Success() {
		verdict = "ready"
	}
	switch {
	case r.NothingToCheck():
		return "nothing to check"
	case r.Refusal != nil:
		return verdict + " (" + r.Refusal.Code + ")"
	case len(r.Problems) > 0:
		return fmt.Sprintf("%s (%d lint problems)", verdict, len(r.Problems))
	}
	return fmt.Sprintf("%s (%d added, %d changed, %d removed); comment %s", verdict, r.Count(prcheck.Added), r.Count(prcheck.Changed), r.Count(prcheck.Removed), o.CommentURL)
}

// gitHub is the resolved GitHub settings: configuration first, then the
// Actions environment.
type gitHub struct {
	apiURL, owner, repo, token string
	eventNumber                int
}

// githubSettings resolves the repository, API URL and token from the
// configuration, then GITHUB_* (and, when useEvent, the event file).
func githubSettings(c *Config, useEvent bool) (gitHub, error) {
	var g gitHub
	repo := c.GitHub.Repository
	if path := os.Getenv("GITHUB_EVENT_PATH"); path != "" && useEvent {
		ev, err := prdoor.ReadEvent(path)
		if err != nil && !errors.Is(err, prdoor.ErrEvent) {
			return g, usagef("GITHUB_EVENT_PATH: %v", err)
		}
		if err == nil {
			g.eventNumber = ev.Number
			if repo == "" {
				repo = ev.Repo
			}
		}
	}
	if repo == "" {
		repo = os.Getenv("GITHUB_REPOSITORY")
	}
	if repo == "" {
		return g, usagef("no repository: pass --repo OWNER/NAME or set github.repository (or GITHUB_REPOSITORY)")
	}
	owner, name, err := prdoor.SplitRepo(repo)
	if err != nil {
		return g, usagef("%v", strings.TrimPrefix(err.Error(), "prdoor: "))
	}
	g.owner, g.repo = owner, name
	g.apiURL = firstNonEmpty(c.GitHub.APIURL, os.Getenv("GITHUB_API_URL"), prdoor.DefaultAPIURL)
	g.token = firstNonEmpty(c.GitHub.Token, os.Getenv("GITHUB_TOKEN"))
	if g.token == "" {
		return g, usagef("no token: set github.token (STARTTLS_PRELOAD_GITHUB_TOKEN) or GITHUB_TOKEN")
	}
	return g, nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// newPRValidator builds the checker from validate.*.
func newPRValidator(c *Config) (*validate.Validator, error) {
	v, err := validate.New(c.Validate.checker())
	if err != nil {
		return nil, usagef("%v", strings.TrimPrefix(err.Error(), "validate: "))
	}
	return v, nil
}

// newDoor wires the pull-request door.
func newDoor(c *Config, g gitHub, v *validate.Validator) (*prdoor.Door, error) {
	gh, err := prdoor.NewClient(g.apiURL, g.token, 2*time.Minute)
	if err != nil {
		return nil, usagef("%v", strings.TrimPrefix(err.Error(), "prdoor: "))
	}
	return &prdoor.Door{
		GH: gh, Owner: g.owner, Repo: g.repo, TXT: v,
		Checker:  func() prcheck.Checker { return v.NewRound() },
		Options:  prcheck.Options{AllowTestTLD: c.List.AllowTestTLD, RemovalLabel: c.List.RemovalLabel},
		BotLogin: firstNonEmpty(c.GitHub.BotLogin, actionsBotLogin()),
	}, nil
}

// actionsBotLogin is the account an Actions token comments as, when
// running in GitHub Actions: that token cannot read its own user, and the
// door must not take another app's comment for its own.
func actionsBotLogin() string {
	if os.Getenv("GITHUB_ACTIONS") == "true" {
		return "github-actions[bot]"
	}
	return ""
}
