package prdoor

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
)

// DefaultListBranch is the branch of the list pull request.
const DefaultListBranch = "starttls-preload/list"

// DecisionStore gives the reasons of the changes a list carries.
type DecisionStore interface {
	Decisions(ctx context.Context, domain string) ([]store.Decision, error)
}

var _ DecisionStore = store.Store(nil)

// ListPublisher proposes each list the service publishes as one pull
// request: branch Branch holds one commit on top of the base branch that
// sets the list file to the published bytes; the pull request is opened
// once and then updated (the branch moved, the body rewritten), and merged
// when AutoMerge is set. So git records every change of the list, whichever
// door it came through, and `git log -p policy-list.json` is its history.
type ListPublisher struct {
	Door      *Door
	Decisions DecisionStore
	// Branch is the pull request's branch (DefaultListBranch).
	Branch string
	// Base is the branch the list lives on (default: the repository's
	// default branch).
	Base      string
	AutoMerge bool
}

// ListPR is what Publish did.
type ListPR struct {
	Number   int
	URL      string
	Created  bool // a new pull request was opened
	Merged   bool
	UpToDate bool // the base branch already holds these bytes: nothing done
	Changes  []prcheck.Change
}

// maxBody bounds the pull request's body.
const maxBody = 60000

func (p *ListPublisher) branch() string {
	if p.Branch == "" {
		return p.Door.listBranch()
	}
	return p.Branch
}

// Publish proposes list (the published, signed bytes of serial) as the
// list file on the base branch.
func (p *ListPublisher) Publish(ctx context.Context, list []byte, serial int64) (*ListPR, error) {
	d := p.Door
	newList, err := listgen.Parse(list)
	if err != nil {
		return nil, fmt.Errorf("prdoor: the published list does not parse: %w", err)
	}
	base := p.Base
	if base == "" {
		r, _, err := d.GH.Repositories.Get(ctx, d.Owner, d.Repo)
		if err != nil {
			return nil, fmt.Errorf("prdoor: reading repository: %w", err)
		}
		base = r.GetDefaultBranch()
	}
	ref, _, err := d.GH.Git.GetRef(ctx, d.Owner, d.Repo, "heads/"+base)
	if err != nil {
		return nil, fmt.Errorf("prdoor: reading branch %s: %w", base, err)
	}
	baseSHA := ref.GetObject().GetSHA()
	cur, err := d.readList(ctx, baseSHA, listgen.MaxSize)
	if err != nil {
		return nil, err
	}
	out := &ListPR{}
	if !cur.Absent && bytes.Equal(cur.Data, list) {
		out.UpToDate = true
		return out, nil
	}
	var oldList *listgen.List
	if !cur.Absent && cur.Data != nil {
		oldList, _ = listgen.Parse(cur.Data) // a broken list in git is replaced whole
	}
	out.Changes = prcheck.Diff(oldList, newList)

	// One commit on top of the base: the list file set to the bytes. A
	// branch that holds exactly that already (a retry, a restart) is
	// left alone: no new commit, no push to start checks again.
	title := fmt.Sprintf("policy-list.json: serial %d", serial)
	branchRef := "refs/heads/" + p.branch()
	bref, _, err := d.GH.Git.GetRef(ctx, d.Owner, d.Repo, "heads/"+p.branch())
	exists := err == nil
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return nil, fmt.Errorf("prdoor: reading branch %s: %w", p.branch(), err)
	}
	commitSHA := ""
	if exists {
		if ok, err := p.holds(ctx, bref.GetObject().GetSHA(), baseSHA, list); err != nil {
			return nil, err
		} else if ok {
			commitSHA = bref.GetObject().GetSHA()
		}
	}
	if commitSHA == "" {
		bc, _, err := d.GH.Git.GetCommit(ctx, d.Owner, d.Repo, baseSHA)
		if err != nil {
			return nil, fmt.Errorf("prdoor: reading commit %s: %w", baseSHA, err)
		}
		tree, _, err := d.GH.Git.CreateTree(ctx, d.Owner, d.Repo, bc.GetTree().GetSHA(), []*github.TreeEntry{{
			Path: github.String(d.listPath()), Mode: github.String("100644"), Type: github.String("blob"), Content: github.String(string(list)),
		}})
		if err != nil {
			return nil, fmt.Errorf("prdoor: writing the tree: %w", err)
		}
		commit, _, err := d.GH.Git.CreateCommit(ctx, d.Owner, d.Repo, &github.Commit{
			Message: github.String(title + "\n\n" + changeSummary(out.Changes)),
			Tree:    &github.Tree{SHA: tree.SHA},
			Parents: []*github.Commit{{SHA: github.String(baseSHA)}},
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("prdoor: writing the commit: %w", err)
		}
		commitSHA = commit.GetSHA()
		ref := &github.Reference{Ref: github.String(branchRef), Object: &github.GitObject{SHA: github.String(commitSHA)}}
		if exists {
			// The branch is ours: it always holds one commit on the base.
			_, _, err = d.GH.Git.UpdateRef(ctx, d.Owner, d.Repo, ref, true)
		} else {
			_, _, err = d.GH.Git.CreateRef(ctx, d.Owner, d.Repo, ref)
		}
		if err != nil {
			return nil, fmt.Errorf("prdoor: moving branch %s: %w", p.branch(), err)
		}
	}

	body := p.body(ctx, serial, out.Changes)
	open, _, err := d.GH.PullRequests.List(ctx, d.Owner, d.Repo, &github.PullRequestListOptions{State: "open", Head: d.Owner + ":" + p.branch(), Base: base})
	if err != nil {
		return nil, fmt.Errorf("prdoor: looking for the list pull request: %w", err)
	}
	var pr *github.PullRequest
	if len(open) > 0 {
		pr, _, err = d.GH.PullRequests.Edit(ctx, d.Owner, d.Repo, open[0].GetNumber(), &github.PullRequest{Title: github.String(title), Body: github.String(body)})
		if err != nil {
			return nil, fmt.Errorf("prdoor: updating the list pull request: %w", err)
		}
	} else {
		pr, _, err = d.GH.PullRequests.Create(ctx, d.Owner, d.Repo, &github.NewPullRequest{Title: github.String(title), Head: github.String(p.branch()), Base: github.String(base), Body: github.String(body)})
		if err != nil {
			return nil, fmt.Errorf("prdoor: opening the list pull request: %w", err)
		}
		out.Created = true
	}
	out.Number, out.URL = pr.GetNumber(), pr.GetHTMLURL()
	if p.AutoMerge {
		res, _, err := d.GH.PullRequests.Merge(ctx, d.Owner, d.Repo, pr.GetNumber(), "", &github.PullRequestOptions{SHA: commitSHA, MergeMethod: "squash", CommitTitle: title})
		if err != nil {
			return out, fmt.Errorf("prdoor: merging the list pull request: %w", err)
		}
		out.Merged = res.GetMerged()
	}
	return out, nil
}

// holds reports whether commit sha is one commit on base whose list file
// is list.
func (p *ListPublisher) holds(ctx context.Context, sha, base string, list []byte) (bool, error) {
	d := p.Door
	c, _, err := d.GH.Git.GetCommit(ctx, d.Owner, d.Repo, sha)
	if err != nil {
		return false, fmt.Errorf("prdoor: reading commit %s: %w", sha, err)
	}
	if len(c.Parents) != 1 || c.Parents[0].GetSHA() != base {
		return false, nil
	}
	f, err := d.readList(ctx, sha, listgen.MaxSize)
	if err != nil {
		return false, err
	}
	return !f.Absent && bytes.Equal(f.Data, list), nil
}

func changeSummary(cs []prcheck.Change) string {
	var b strings.Builder
	for i, c := range cs {
		if i == 100 {
			fmt.Fprintf(&b, "… and %d more\n", len(cs)-100)
			break
		}
		fmt.Fprintf(&b, "%s %s\n", c.Kind, c.Domain)
	}
	return b.String()
}

// body lists each change with its reason: the latest decision that the
// store recorded for the domain.
func (p *ListPublisher) body(ctx context.Context, serial int64, cs []prcheck.Change) string {
	var b strings.Builder
	fmt.Fprintf(&b, "The list the service published as serial %d. Each change and why:\n\n", serial)
	if len(cs) == 0 {
		b.WriteString("No policy changed (the list was signed again before it expires).\n")
	} else {
		b.WriteString("| Domain | Change | Policy | Reason | Decided |\n|---|---|---|---|---|\n")
	}
	for i, c := range cs {
		if b.Len() > maxBody-500 {
			fmt.Fprintf(&b, "| … | %d more | | | |\n", len(cs)-i)
			break
		}
		pol := c.New
		if c.Kind == prcheck.Removed {
			pol = c.Old
		}
		reason, at := "—", "—"
		if dec, ok := p.decision(ctx, c.Domain); ok {
			reason, at = mdText(dec.Reason), dec.At.UTC().Format(time.DateOnly)
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s %s | %s | %s |\n", c.Domain, c.Kind, pol.Mode, strings.Join(pol.MXs, " "), reason, at)
	}
	b.WriteString("\nThis pull request is opened and updated by `starttls-preload publish github`; every domain in it passed the service's repeated checks.\n")
	return b.String()
}

func (p *ListPublisher) decision(ctx context.Context, domain string) (store.Decision, bool) {
	if p.Decisions == nil {
		return store.Decision{}, false
	}
	ds, err := p.Decisions.Decisions(ctx, domain)
	if err != nil || len(ds) == 0 {
		return store.Decision{}, false
	}
	return ds[len(ds)-1], true
}

// mdText makes a stored reason safe in a table cell: cut short, then
// escaped as the pull-request comment escapes remote text (no HTML, no
// table break, no mention or issue reference).
func mdText(s string) string {
	if len(s) > 300 {
		i := 300
		for i > 0 && s[i]&0xC0 == 0x80 {
			i--
		}
		s = s[:i] + "…"
	}
	return prcheck.Escape(s)
}

// ListSource is where the published lists come from (a publish.Archive).
type ListSource interface {
	Current(ctx context.Context) (*publish.Snapshot, error)
}

var _ ListSource = (*publish.Archive)(nil)

// ListJob proposes each list Source publishes once, through Publisher: the
// service runs Run as a periodic job. A serial not newer than the last one
// proposed is not proposed again; one that failed is tried at the next run.
type ListJob struct {
	Publisher *ListPublisher
	Source    ListSource
	Log       *slog.Logger // default slog.Default()

	mu   sync.Mutex
	done int64 // the serial last proposed
}

// Run proposes the current list when it is newer than the last proposed.
// Nothing published yet is not an error.
func (j *ListJob) Run(ctx context.Context) error {
	snap, err := j.Source.Current(ctx)
	if err != nil {
		return nil // nothing published yet
	}
	j.mu.Lock()
	done := j.done
	j.mu.Unlock()
	if snap.Serial <= done {
		return nil
	}
	r, err := j.Publisher.Publish(ctx, snap.List, snap.Serial)
	if err != nil {
		return err
	}
	j.mu.Lock()
	j.done = snap.Serial
	j.mu.Unlock()
	if !r.UpToDate {
		log := j.Log
		if log == nil {
			log = slog.Default()
		}
		log.InfoContext(ctx, "list pull request", "serial", snap.Serial, "url", r.URL, "created", r.Created, "merged", r.Merged, "changes", len(r.Changes))
	}
	return nil
}
