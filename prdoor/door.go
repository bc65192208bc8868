package prdoor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/starttls-preload/starttls-preload/prcheck"
	"github.com/starttls-preload/starttls-preload/validate"
)

var _ prcheck.TXTLookup = (*validate.Validator)(nil)

// StatusContext is the context of the commit status pr-check sets.
const StatusContext = "starttls-preload/pr-check"

// DefaultListPath is the list file's path in the repository.
const DefaultListPath = "policy-list.json"

// maxPages bounds the pages of any list read (100 items a page).
const maxPages = 50

// Door answers pull requests of one repository.
type Door struct {
	GH          *github.Client
	Owner, Repo string
	// Checker returns the checker for one run (a validate.Round, so that a
	// run contacts each MX address once).
	Checker func() prcheck.Checker
	TXT     prcheck.TXTLookup
	Options prcheck.Options
	// ListPath is the list file (default policy-list.json).
	ListPath string
	// ListBranch is the branch of the service's list pull request
	// (DefaultListBranch), which is not checked.
	ListBranch string
	// BotLogin, when set, is the login whose comment carrying the marker
	// is the bot's; otherwise the token's own login (GET /user), or any
	// Bot account when the token cannot read it (an Actions token).
	BotLogin string
	Log      *slog.Logger

	mu      sync.Mutex
	htmlURL string
	self    *string
}

// Outcome is one answered pull request.
type Outcome struct {
	Number     int
	URL        string
	HeadSHA    string
	State      string // open, closed
	Report     *prcheck.Report
	CommentID  int64
	CommentURL string
	// UnlabeledHead is the head answered without the removal label, or
	// with it approving (the comment records it, UnlabeledMarker).
	UnlabeledHead string
	// SubmittedHead is the head commit whose domains the watcher handed
	// to the lifecycle; the comment records it (SubmittedMarker).
	SubmittedHead string
}

// SubmittedMarker is the hidden line by which the bot's comment records
// that the watcher submitted the domains of head commit sha.
func SubmittedMarker(sha string) string {
	return "<!-- starttls-preload:submitted " + sha + " -->"
}

// commentBody is the comment for o: prcheck's, and the submitted head's
// marker (a hex SHA read from the API; anything else is not written).
func (d *Door) commentBody(o *Outcome, adm []prcheck.Admission) string {
	body := prcheck.Comment(o.Report, adm, d.Options)
	if o.State == "closed" && o.SubmittedHead != "" {
		body += "\n### This pull request is closed\n\n" +
			"The domains it submitted stay submitted: their owner proved control of them, and this pull request did not need to be merged. " +
			"The service goes on checking them and admits them as above; this comment is no longer updated. " +
			"To withdraw a domain, ask for its removal (the web form, or a pull request that removes it, with the ownership proof).\n"
	}
	if isSHA(o.UnlabeledHead) {
		body += "\n" + UnlabeledMarker(o.UnlabeledHead) + "\n"
	}
	if isSHA(o.SubmittedHead) {
		body += "\n" + SubmittedMarker(o.SubmittedHead) + "\n"
	}
	return body
}

// UnlabeledMarker is the hidden line by which the bot's comment records
// that head commit sha was answered without the removal label (or with
// it approving): a label seen on that head afterwards was applied to it.
func UnlabeledMarker(sha string) string {
	return "<!-- starttls-preload:unlabeled " + sha + " -->"
}

// unlabeledHead returns the head the bot's comment on pull request n
// records as answered without the removal label ("" if none).
func (d *Door) unlabeledHead(ctx context.Context, n int) (string, error) {
	c, err := d.findComment(ctx, n)
	if err != nil || c == nil {
		return "", err
	}
	const prefix = "\n<!-- starttls-preload:unlabeled "
	_, rest, ok := strings.Cut(c.GetBody(), prefix)
	if !ok {
		return "", nil
	}
	sha, _, ok := strings.Cut(rest, " -->\n")
	if !ok || !isSHA(sha) {
		return "", nil
	}
	return sha, nil
}

func isSHA(s string) bool {
	if len(s) != 40 {
		return false
	}
	for _, r := range s {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return false
		}
	}
	return true
}

// headSubmitted reports whether the bot's comment on pull request n
// records that head sha was submitted.
func (d *Door) headSubmitted(ctx context.Context, n int, sha string) (bool, error) {
	if !isSHA(sha) {
		return false, nil
	}
	c, err := d.findComment(ctx, n)
	if err != nil || c == nil {
		return false, err
	}
	return strings.Contains(c.GetBody(), "\n"+SubmittedMarker(sha)+"\n"), nil
}

// Success reports whether the pull request passed.
func (o *Outcome) Success() bool { return o.Report != nil && o.Report.Success() }

func (d *Door) listPath() string {
	if d.ListPath == "" {
		return DefaultListPath
	}
	return d.ListPath
}

func (d *Door) listBranch() string {
	if d.ListBranch == "" {
		return DefaultListBranch
	}
	return d.ListBranch
}

func (d *Door) log() *slog.Logger {
	if d.Log == nil {
		return slog.Default()
	}
	return d.Log
}

// RepoHTMLURL returns the repository's html_url (read once), the base of
// its pull requests' URLs on github.com and on GitHub Enterprise alike.
func (d *Door) RepoHTMLURL(ctx context.Context) (string, error) {
	d.mu.Lock()
	u := d.htmlURL
	d.mu.Unlock()
	if u != "" {
		return u, nil
	}
	r, _, err := d.GH.Repositories.Get(ctx, d.Owner, d.Repo)
	if err != nil {
		return "", fmt.Errorf("prdoor: reading repository %s/%s: %w", d.Owner, d.Repo, err)
	}
	u = strings.TrimSuffix(r.GetHTMLURL(), "/")
	if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
		return "", fmt.Errorf("prdoor: repository %s/%s has no usable html_url (%q)", d.Owner, d.Repo, u)
	}
	d.mu.Lock()
	d.htmlURL = u
	d.mu.Unlock()
	return u, nil
}

// PRURL returns pull request n's URL, <html_url>/pull/N.
func (d *Door) PRURL(ctx context.Context, n int) (string, error) {
	u, err := d.RepoHTMLURL(ctx)
	if err != nil {
		return "", err
	}
	return u + "/pull/" + strconv.Itoa(n), nil
}

// CheckPR answers pull request n: a pending status, the evaluation, then
// the one comment and the final status.
func (d *Door) CheckPR(ctx context.Context, n int) (*Outcome, error) {
	pr, err := d.getPR(ctx, n)
	if err != nil {
		return nil, err
	}
	if err := d.setStatus(ctx, pr.GetHead().GetSHA(), "pending", "Checking policy-list.json", ""); err != nil {
		return nil, err
	}
	o, err := d.evaluate(ctx, pr)
	if err == nil {
		err = d.WriteComment(ctx, o, nil)
	}
	if err != nil {
		// Not pending for ever: the check could not run. Set even when
		// ctx is done (a timeout), within its own deadline.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if serr := d.setStatus(sctx, pr.GetHead().GetSHA(), "error", "The check could not run (GitHub API or DNS failure); re-run it", ""); serr != nil {
			err = errors.Join(err, serr)
		}
		return o, err
	}
	return o, d.WriteStatus(ctx, o)
}

// Evaluate reads pull request n and evaluates it, writing nothing.
func (d *Door) Evaluate(ctx context.Context, n int) (*Outcome, error) {
	pr, err := d.getPR(ctx, n)
	if err != nil {
		return nil, err
	}
	return d.evaluate(ctx, pr)
}

func (d *Door) getPR(ctx context.Context, n int) (*github.PullRequest, error) {
	pr, _, err := d.GH.PullRequests.Get(ctx, d.Owner, d.Repo, n)
	if err != nil {
		return nil, fmt.Errorf("prdoor: reading pull request %d: %w", n, err)
	}
	if len(pr.GetHead().GetSHA()) != 40 || len(pr.GetBase().GetSHA()) != 40 {
		return nil, fmt.Errorf("prdoor: pull request %d has no head or base commit", n)
	}
	return pr, nil
}

func (d *Door) evaluate(ctx context.Context, pr *github.PullRequest) (*Outcome, error) {
	n := pr.GetNumber()
	prURL, err := d.PRURL(ctx, n)
	if err != nil {
		return nil, err
	}
	o := &Outcome{Number: n, URL: prURL, HeadSHA: pr.GetHead().GetSHA(), State: pr.GetState()}
	in := prcheck.Input{URL: prURL, HeadSHA: o.HeadSHA}
	for _, l := range pr.Labels {
		in.Labels = append(in.Labels, l.GetName())
	}
	// The service's own list pull request: a branch of this repository
	// (only its writers can push one), not a fork's branch of that name.
	if pr.GetHead().GetRef() == d.listBranch() && pr.GetHead().GetRepo().GetFullName() == d.Owner+"/"+d.Repo {
		o.Report = &prcheck.Report{URL: prURL, HeadSHA: o.HeadSHA, ServiceList: true}
		return o, nil
	}
	touched, err := d.touchesList(ctx, n)
	if err != nil {
		return nil, err
	}
	if !touched {
		o.Report = &prcheck.Report{URL: prURL, HeadSHA: o.HeadSHA}
		return o, nil
	}
	opts := d.Options
	// The removal label approves the head it was applied to: only when
	// the bot's comment records that this head was answered without it.
	if slices.Contains(in.Labels, opts.RemovalLabelOrDefault()) {
		seen, err := d.unlabeledHead(ctx, n)
		if err != nil {
			return nil, err
		}
		in.LabelStale = seen != o.HeadSHA
	}
	if !in.LabelStale {
		o.UnlabeledHead = o.HeadSHA
	}
	if in.Base, err = d.readList(ctx, pr.GetBase().GetSHA(), opts.MaxListSizeOrDefault()); err != nil {
		return nil, err
	}
	if in.Head, err = d.readList(ctx, o.HeadSHA, opts.MaxListSizeOrDefault()); err != nil {
		return nil, err
	}
	var checker prcheck.Checker
	if d.Checker != nil {
		checker = d.Checker()
	}
	o.Report, err = prcheck.Evaluate(ctx, in, checker, d.TXT, opts)
	if err != nil {
		return nil, err
	}
	return o, nil
}

// touchesList reports whether the pull request's files include the list.
func (d *Door) touchesList(ctx context.Context, n int) (bool, error) {
	opt := &github.ListOptions{PerPage: 100}
	for range maxPages {
		files, resp, err := d.GH.PullRequests.ListFiles(ctx, d.Owner, d.Repo, n, opt)
		if err != nil {
			return false, fmt.Errorf("prdoor: listing the files of pull request %d: %w", n, err)
		}
		for _, f := range files {
			if f.GetFilename() == d.listPath() || f.GetPreviousFilename() == d.listPath() {
				return true, nil
			}
		}
		if resp.NextPage == 0 {
			return false, nil
		}
		opt.Page = resp.NextPage
	}
	// More files than we page through: read the list to be sure.
	return true, nil
}

// readList reads the list file at a commit through the contents API:
// metadata first, and nothing more when it is larger than limit; the bytes
// come base64 in the metadata (up to 1 MB) or raw, read up to limit.
func (d *Door) readList(ctx context.Context, ref string, limit int64) (prcheck.File, error) {
	fc, _, _, err := d.GH.Repositories.GetContents(ctx, d.Owner, d.Repo, d.listPath(), &github.RepositoryContentGetOptions{Ref: ref})
	if isStatus(err, http.StatusNotFound) {
		return prcheck.File{Absent: true}, nil
	}
	if err != nil {
		return prcheck.File{}, fmt.Errorf("prdoor: reading %s at %s: %w", d.listPath(), ref, err)
	}
	if fc == nil || fc.GetType() != "file" {
		return prcheck.File{Absent: true}, nil
	}
	f := prcheck.File{Size: int64(fc.GetSize())}
	if f.Size > limit {
		return f, nil
	}
	if fc.GetEncoding() == "base64" && fc.Content != nil && *fc.Content != "" || f.Size == 0 {
		s, err := fc.GetContent()
		if err != nil {
			return prcheck.File{}, fmt.Errorf("prdoor: decoding %s at %s: %w", d.listPath(), ref, err)
		}
		f.Data = []byte(s)
		return f, nil
	}
	u := fmt.Sprintf("repos/%s/%s/contents/%s?ref=%s", url.PathEscape(d.Owner), url.PathEscape(d.Repo), escapePath(d.listPath()), url.QueryEscape(ref))
	req, err := d.GH.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return prcheck.File{}, err
	}
	req.Header.Set("Accept", "application/vnd.github.raw")
	resp, err := d.GH.BareDo(ctx, req)
	if err != nil {
		return prcheck.File{}, fmt.Errorf("prdoor: reading %s at %s: %w", d.listPath(), ref, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return prcheck.File{}, fmt.Errorf("prdoor: reading %s at %s: %w", d.listPath(), ref, err)
	}
	if int64(len(b)) > limit {
		return prcheck.File{Size: max(f.Size, int64(len(b)))}, nil
	}
	f.Data = b
	return f, nil
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func isStatus(err error, code int) bool {
	var er *github.ErrorResponse
	return errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == code
}

// WriteComment writes the one bot comment on the pull request: the comment
// carrying the marker is edited in place, or created when there is none.
func (d *Door) WriteComment(ctx context.Context, o *Outcome, adm []prcheck.Admission) error {
	c, err := d.findComment(ctx, o.Number)
	if err != nil {
		return err
	}
	// The watcher's record that this head was submitted stays, whoever
	// writes the comment (a pr-check run knows nothing of submissions).
	if c != nil && o.SubmittedHead == "" && isSHA(o.HeadSHA) && strings.Contains(c.GetBody(), "\n"+SubmittedMarker(o.HeadSHA)+"\n") {
		o.SubmittedHead = o.HeadSHA
	}
	body := d.commentBody(o, adm)
	if c != nil {
		o.CommentID, o.CommentURL = c.GetID(), c.GetHTMLURL()
		if c.GetBody() == body {
			return nil
		}
		c, _, err = d.GH.Issues.EditComment(ctx, d.Owner, d.Repo, c.GetID(), &github.IssueComment{Body: github.String(body)})
		if err != nil {
			return fmt.Errorf("prdoor: editing the comment on pull request %d: %w", o.Number, err)
		}
		o.CommentURL = c.GetHTMLURL()
		return nil
	}
	c, _, err = d.GH.Issues.CreateComment(ctx, d.Owner, d.Repo, o.Number, &github.IssueComment{Body: github.String(body)})
	if err != nil {
		return fmt.Errorf("prdoor: commenting on pull request %d: %w", o.Number, err)
	}
	o.CommentID, o.CommentURL = c.GetID(), c.GetHTMLURL()
	return nil
}

// findComment returns the bot's comment (first line the marker, written by
// the bot), or nil.
func (d *Door) findComment(ctx context.Context, n int) (*github.IssueComment, error) {
	self := d.selfLogin(ctx)
	opt := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for range maxPages {
		cs, resp, err := d.GH.Issues.ListComments(ctx, d.Owner, d.Repo, n, opt)
		if err != nil {
			return nil, fmt.Errorf("prdoor: listing the comments of pull request %d: %w", n, err)
		}
		for _, c := range cs {
			if !strings.HasPrefix(c.GetBody(), prcheck.Marker) {
				continue
			}
			u := c.GetUser()
			if self != "" && u.GetLogin() == self || self == "" && u.GetType() == "Bot" {
				return c, nil
			}
		}
		if resp.NextPage == 0 {
			return nil, nil
		}
		opt.Page = resp.NextPage
	}
	return nil, nil
}

// selfLogin is BotLogin, or the token's login, or "" when the token cannot
// read its user (an Actions installation token).
func (d *Door) selfLogin(ctx context.Context) string {
	if d.BotLogin != "" {
		return d.BotLogin
	}
	d.mu.Lock()
	s := d.self
	d.mu.Unlock()
	if s != nil {
		return *s
	}
	login := ""
	if u, _, err := d.GH.Users.Get(ctx, ""); err == nil {
		login = u.GetLogin()
	}
	d.mu.Lock()
	d.self = &login
	d.mu.Unlock()
	return login
}

// WriteStatus sets the commit status on the head commit: success only when
// the report is a success.
func (d *Door) WriteStatus(ctx context.Context, o *Outcome) error {
	state, desc := "failure", statusDescription(o.Report)
	if o.Success() {
		state = "success"
	}
	return d.setStatus(ctx, o.HeadSHA, state, desc, o.CommentURL)
}

func (d *Door) setStatus(ctx context.Context, sha, state, desc, target string) error {
	st := &github.RepoStatus{State: github.String(state), Context: github.String(StatusContext), Description: github.String(desc)}
	if target != "" {
		st.TargetURL = github.String(target)
	}
	if _, _, err := d.GH.Repositories.CreateStatus(ctx, d.Owner, d.Repo, sha, st); err != nil {
		return fmt.Errorf("prdoor: setting the status of %s: %w", sha, err)
	}
	return nil
}

// statusDescription sums the report up in at most 140 characters.
func statusDescription(r *prcheck.Report) string {
	switch {
	case r.ServiceList:
		return "The service's published list: nothing to check"
	case r.NothingToCheck():
		return "Nothing to check: no policy changed"
	case r.Refusal != nil:
		return "Not checked: " + r.Refusal.Code
	case len(r.Problems) > 0:
		return fmt.Sprintf("policy-list.json does not lint clean (%d problems)", len(r.Problems))
	}
	bad := 0
	for _, d := range r.Domains {
		if !d.OK() {
			bad++
		}
	}
	if bad == 0 {
		return fmt.Sprintf("%d domains pass and are proven", len(r.Domains))
	}
	return fmt.Sprintf("%d of %d domains need attention", bad, len(r.Domains))
}
