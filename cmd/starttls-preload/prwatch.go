package main

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/prdoor"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/service"
)

// githubJobs are serve's jobs of the pull-request door, when
// github.repository and github.token are set: the watcher of open pull
// requests, and the list pull request after each published list.
func githubJobs(p serveParts) ([]service.Job, error) {
	return githubJobsFor("serve", p)
}

// githubJobsFor returns the jobs of process ("serve" or "worker"): the
// watcher where github.watcher names the process, the list pull request
// where the lists are published (p.Archive set).
func githubJobsFor(process string, p serveParts) ([]service.Job, error) {
	c := p.Config
	if c.GitHub.Repository == "" || c.GitHub.Token == "" {
		return nil, nil
	}
	switch c.GitHub.Watcher {
	case "serve", "worker", "off":
	default:
		return nil, usagef("github.watcher must be serve, worker or off, not %q", c.GitHub.Watcher)
	}
	if c.GitHub.PollInterval <= 0 {
		return nil, usagef("github.poll_interval must be positive")
	}
	g, err := githubSettings(c, false)
	if err != nil {
		return nil, err
	}
	door, err := newDoor(c, g, p.Validator)
	if err != nil {
		return nil, err
	}
	door.Log = slog.Default()
	var jobs []service.Job
	if c.GitHub.Watcher == process {
		now := p.Now
		if now == nil {
			now = time.Now
		}
		w := &prdoor.Watcher{
			Door:      door,
			Lifecycle: &lifecycle.Lifecycle{Store: p.Store, TXT: p.Validator, Now: now},
			Store:     p.Store,
			Now:       now,
			MinChecks: c.Admission.MinChecks,
			MinDays:   c.Admission.MinDays,
		}
		jobs = append(jobs, service.Job{Name: "pull requests", Every: c.GitHub.PollInterval, Run: w.Poll})
	}
	if p.Archive != nil {
		lp := &prdoor.ListJob{Publisher: &prdoor.ListPublisher{Door: door, Decisions: p.Store, AutoMerge: c.GitHub.AutoMerge}, Source: p.Archive}
		jobs = append(jobs, service.Job{Name: "list pull request", Every: c.GitHub.PollInterval, Run: lp.Run})
	}
	return jobs, nil
}

func newPublishGitHubCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "github",
		Short: "Open or update the pull request that sets policy-list.json to the published list",
		Long: `github proposes the current published list (the archive's latest serial) as
one pull request on github.repository: branch starttls-preload/list holds
one commit on the default branch that sets policy-list.json to the published
bytes, and the pull request's body lists each change with its reason from
the store's decisions. The pull request is opened once and then updated;
with github.auto_merge (--auto-merge) it is merged, so that
'git log -p policy-list.json' is the list's history. serve does the same
after each list it publishes when github.repository and github.token are set.

The token comes from github.token (STARTTLS_PRELOAD_GITHUB_TOKEN) or
GITHUB_TOKEN and needs contents: write and pull-requests: write.`,
		Example: `  STARTTLS_PRELOAD_GITHUB_TOKEN=... starttls-preload publish github --repo example/starttls-list
  starttls-preload publish github --repo example/starttls-list --auto-merge`,
		Args: cobra.NoArgs,
		RunE: runPublishGitHub,
	}
	f := cmd.Flags()
	f.String("repo", "", "repository OWNER/NAME (default github.repository or GITHUB_REPOSITORY)")
	f.String("api-url", "", "REST API base URL (default github.api_url, GITHUB_API_URL or https://api.github.com)")
	f.Bool("auto-merge", false, "merge the pull request")
	f.String("archive", "", "archive of signed lists (default DATA_DIR/archive)")
	f.String("data-dir", "", "data directory (default ./data)")
	return cmd
}

func runPublishGitHub(cmd *cobra.Command, _ []string) error {
	c, err := loadConfig(cmd, map[string]string{
		"github.repository": "repo",
		"github.api_url":    "api-url",
		"github.auto_merge": "auto-merge",
		"publish.archive":   "archive",
		"data_dir":          "data-dir",
	})
	if err != nil {
		return err
	}
	g, err := githubSettings(c, false)
	if err != nil {
		return err
	}
	dir := c.archiveDir()
	arch, err := publish.OpenArchive(dir)
	if err != nil {
		return usagef("%v", err)
	}
	snap, err := arch.Current(cmd.Context())
	if err != nil {
		return failf("no published list in %s: %v", dir, err)
	}
	st, err := openStore(cmd.Context(), c)
	if err != nil {
		return err
	}
	defer st.Close()
	gh, err := prdoor.NewClient(g.apiURL, g.token, 0)
	if err != nil {
		return usagef("%v", err)
	}
	p := &prdoor.ListPublisher{Door: &prdoor.Door{GH: gh, Owner: g.owner, Repo: g.repo}, Decisions: st, AutoMerge: c.GitHub.AutoMerge}
	r, err := p.Publish(cmd.Context(), snap.List, snap.Serial)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return failf("%v", err)
	}
	switch {
	case r.UpToDate:
		fmt.Fprintf(cmd.OutOrStdout(), "policy-list.json on the default branch is serial %d already\n", snap.Serial)
	case r.Merged:
		fmt.Fprintf(cmd.OutOrStdout(), "serial %d: %s merged (%d changes)\n", snap.Serial, r.URL, len(r.Changes))
	default:
		verb := "updated"
		if r.Created {
			verb = "opened"
		}
		fmt.Fprintf(cmd.OutOrStdout(), "serial %d: %s %s (%d changes)\n", snap.Serial, r.URL, verb, len(r.Changes))
	}
	return nil
}
