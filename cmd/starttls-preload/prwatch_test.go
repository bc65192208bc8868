package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/fakegithub"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/prdoor"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
)

// TestServeWatchesPullRequests runs serve's parts with github.* set: a
// proven PR's domain enters validating from the watcher, rounds admit it,
// the comment follows to the list serial, and the list pull request
// carries the published list.
func TestServeWatchesPullRequests(t *testing.T) {
	l := newCheckLab(t)
	serveEnv(t, l)
	gh := fakegithub.New(t, "example", "list", map[string][]byte{"policy-list.json": prListBytes(t)})
	l.dns.Add(fmt.Sprintf("_starttls-preload.good.test. 300 IN TXT %q", gh.PRURL(7)))
	gh.OpenPR(7, "contributor/list", map[string][]byte{"policy-list.json": prListBytes(t, "good.test")})
	t.Setenv("STARTTLS_PRELOAD_GITHUB_REPOSITORY", "example/list")
	t.Setenv("STARTTLS_PRELOAD_GITHUB_TOKEN", "ghs_test")
	t.Setenv("STARTTLS_PRELOAD_GITHUB_API_URL", gh.APIURL())
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")

	dataDir := t.TempDir()
	c := testServeConfig(t, dataDir, "127.0.0.1:0")
	clock := testclock.New(time.Now().Add(time.Minute).UTC())
	ctx := context.Background()
	app := testServeApp(ctx, t, c, schedulerDeps{now: clock.Now})

	if err := app.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := app.store.GetDomain(ctx, "good.test")
	if err != nil || d.State != store.StateValidating || d.Source != gh.PRURL(7) {
		t.Fatalf("good.test after the first tick: %+v %v", d, err)
	}
	comment := func() string {
		t.Helper()
		cs := gh.Comments(7)
		if len(cs) != 1 {
			t.Fatalf("%d comments on PR 7, want 1", len(cs))
		}
		return cs[0].Body
	}
	if !strings.Contains(comment(), "Admission progress") {
		t.Fatalf("comment:\n%s", comment())
	}
	for i := 0; i < 10 && !strings.Contains(comment(), "admitted, in list serial"); i++ {
		clock.Add(6 * time.Hour)
		if err := app.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(comment(), "admitted, in list serial") {
		t.Fatalf("never admitted:\n%s", comment())
	}
	// The list pull request holds the list with good.test.
	var listPR *fakegithub.PR
	for _, p := range gh.PRs() {
		if p.HeadRef == prdoor.DefaultListBranch {
			if listPR != nil {
				t.Fatal("two list pull requests")
			}
			p := p
			listPR = &p
		}
	}
	if listPR == nil {
		t.Fatal("no list pull request")
	}
	b, _ := gh.File(prdoor.DefaultListBranch, "policy-list.json")
	lst, err := listgen.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := lst.Resolve("good.test"); !ok || !strings.Contains(listPR.Body, "`good.test` | added") {
		t.Fatalf("list PR: %+v\n%s", listPR, b)
	}
}

// TestPublishGitHubCommand: publish github proposes the archive's latest
// list as the one list pull request, then finds it up to date once merged.
func TestPublishGitHubCommand(t *testing.T) {
	gh := fakegithub.New(t, "example", "list", map[string][]byte{"policy-list.json": prListBytes(t)})
	dataDir := t.TempDir()
	key, err := listgen.GenerateKey("ed25519")
	if err != nil {
		t.Fatal(err)
	}
	b := prListBytes(t, "admitted.test")
	sig, err := listgen.SignBlob(key, b)
	if err != nil {
		t.Fatal(err)
	}
	a, err := publish.OpenArchive(filepath.Join(dataDir, "archive"))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Add(t.Context(), &publish.Snapshot{Serial: 1, List: b, Sig: sig}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STARTTLS_PRELOAD_GITHUB_TOKEN", "ghs_test")
	t.Setenv("GITHUB_API_URL", gh.APIURL())
	args := []string{"publish", "github", "--repo", "example/list", "--data-dir", dataDir}
	out, errOut, code := execute(t, args...)
	if code != exitOK || !strings.Contains(out, "opened") {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if got, _ := gh.File(prdoor.DefaultListBranch, "policy-list.json"); string(got) != string(b) {
		t.Fatalf("branch holds %q", got)
	}
	out, errOut, code = execute(t, append(args, "--auto-merge")...)
	if code != exitOK || !strings.Contains(out, "merged") || len(gh.PRs()) != 1 {
		t.Fatalf("exit %d: %s %s; %d PRs", code, out, errOut, len(gh.PRs()))
	}
	if got, _ := gh.File("main", "policy-list.json"); string(got) != string(b) {
		t.Fatalf("main holds %q", got)
	}
	if out, _, code = execute(t, args...); code != exitOK || !strings.Contains(out, "already") {
		t.Fatalf("again: exit %d: %s", code, out)
	}
	if _, errOut, code := execute(t, "publish", "github", "--data-dir", dataDir); code != exitUsage || !strings.Contains(errOut, "repository") {
		t.Errorf("no repository: exit %d: %s", code, errOut)
	}
}

// TestWorkerWatchesPullRequests: with github.watcher "worker", a worker
// round also answers the pull requests and submits the proven domain.
func TestWorkerWatchesPullRequests(t *testing.T) {
	l := newCheckLab(t)
	serveEnv(t, l)
	gh := fakegithub.New(t, "example", "list", map[string][]byte{"policy-list.json": prListBytes(t)})
	l.dns.Add(fmt.Sprintf("_starttls-preload.good.test. 300 IN TXT %q", gh.PRURL(7)))
	gh.OpenPR(7, "contributor/list", map[string][]byte{"policy-list.json": prListBytes(t, "good.test")})
	t.Setenv("STARTTLS_PRELOAD_GITHUB_REPOSITORY", "example/list")
	t.Setenv("STARTTLS_PRELOAD_GITHUB_TOKEN", "ghs_test")
	t.Setenv("STARTTLS_PRELOAD_GITHUB_API_URL", gh.APIURL())
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	t.Setenv("STARTTLS_PRELOAD_GITHUB_WATCHER", "worker")
	dataDir := t.TempDir()
	if _, errOut, code := execute(t, "worker", "--once", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("worker --once: exit %d: %s", code, errOut)
	}
	if cs := gh.Comments(7); len(cs) != 1 || !strings.Contains(cs[0].Body, "| `good.test` | validating |") {
		t.Fatalf("comments: %+v", cs)
	}
	out, _, code := execute(t, "domains", "show", "good.test", "--data-dir", dataDir)
	if code != exitOK || !strings.Contains(out, "validating") {
		t.Fatalf("domains show: %d %s", code, out)
	}
	t.Setenv("STARTTLS_PRELOAD_GITHUB_WATCHER", "elsewhere")
	if _, errOut, code := execute(t, "worker", "--once", "--data-dir", dataDir); code != exitUsage || !strings.Contains(errOut, "github.watcher") {
		t.Errorf("bad github.watcher: exit %d: %s", code, errOut)
	}
}
