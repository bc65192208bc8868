// Package fakegithub is an in-memory GitHub REST API on httptest for the
// tests of the pull-request door. It implements, as GitHub's REST
// documentation describes them, the endpoints the door uses: a repository,
// pull requests (get, list with ETag conditional requests, files, create,
// update, merge), file contents at a ref (base64 up to 1 MB, "encoding":
// "none" above, the raw media type for any size), issue comments (list with
// Link pagination, create, edit), commit statuses, and git refs, trees and
// commits. Every request is recorded.
//
// API paths are served under /api/v3/ as on GitHub Enterprise Server; HTML
// URLs are the server's own (http://127.0.0.1:port/OWNER/NAME).
package fakegithub

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one recorded request.
type Call struct {
	Method string
	Path   string // without /api/v3
	Query  url.Values
	Status int
	Body   string
}

// Commit is a commit: the files of its tree, and its parents.
type Commit struct {
	SHA     string
	Files   map[string][]byte
	Parents []string
	Message string
	Tree    string
}

// PR is a pull request.
type PR struct {
	Number   int
	State    string // open, closed
	Merged   bool
	Title    string
	Body     string
	HeadRef  string
	HeadSHA  string
	HeadRepo string // owner/name; another repository for a fork; "" for a deleted fork
	BaseRef  string
	BaseSHA  string
	Labels   []string
	User     string
	Updated  time.Time
}

// Comment is an issue comment.
type Comment struct {
	ID      int64
	Issue   int
	User    string
	UserBot bool
	Body    string
}

// Status is a commit status.
type Status struct {
	SHA, State, Context, Description, TargetURL string
}

// Server is the fake API of one repository.
type Server struct {
	*httptest.Server
	Owner, Name string
	// BotLogin is the login the token authenticates as; the door's
	// comments are made by it (as a Bot).
	BotLogin string
	// Token is the token requests must carry ("" accepts any).
	Token string

	mu       sync.Mutex
	calls    []Call
	commits  map[string]*Commit
	branches map[string]string
	prs      map[int]*PR
	trees    map[string]map[string][]byte
	comments []*Comment
	statuses []Status
	nextID   int64
	// limited: the next n requests get this status with rate-limit headers.
	limitN      int
	limitStatus int
	limitReset  time.Time
	limitRetry  int
	// limitSecondary: a secondary rate limit (remaining not 0).
	limitSecondary bool
	// faults: the next requests matching a method and path fail.
	faults []fault
	// RawCalls counts raw content downloads (to check bounded reads).
	rawBytes int64
}

// New starts a fake for OWNER/NAME with a default branch "main" whose
// first commit holds files.
func New(t testing.TB, owner, name string, files map[string][]byte) *Server {
	s := &Server{Owner: owner, Name: name, BotLogin: "starttls-preload[bot]", commits: map[string]*Commit{}, trees: map[string]map[string][]byte{}, branches: map[string]string{}, prs: map[int]*PR{}, nextID: 1000}
	s.branches["main"] = s.AddCommit("", files, "initial")
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// APIURL is the base URL to give the client (GITHUB_API_URL).
func (s *Server) APIURL() string { return s.URL + "/api/v3" }

// HTMLURL is the repository's html_url.
func (s *Server) HTMLURL() string { return s.URL + "/" + s.Owner + "/" + s.Name }

// PRURL is a pull request's html_url.
func (s *Server) PRURL(n int) string { return s.HTMLURL() + "/pull/" + strconv.Itoa(n) }

// AddCommit stores a commit with files on top of parent and returns its SHA.
func (s *Server) AddCommit(parent string, files map[string][]byte, msg string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addCommitLocked(parent, files, msg)
}

func (s *Server) addCommitLocked(parent string, files map[string][]byte, msg string) string {
	h := sha1.New()
	fmt.Fprintf(h, "%s\n%s\n%d\n", parent, msg, len(s.commits))
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%s %x\n", k, sha256.Sum256(files[k]))
	}
	sha := hex.EncodeToString(h.Sum(nil))
	c := &Commit{SHA: sha, Files: files, Message: msg, Tree: s.treeSHA(files)}
	if parent != "" {
		c.Parents = []string{parent}
	}
	s.commits[sha] = c
	return sha
}

// Branch returns a branch's head commit SHA ("" if none).
func (s *Server) Branch(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.branches[name]
}

// File returns a file at a commit or branch.
func (s *Server) File(ref, path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.commitLocked(ref)
	if c == nil {
		return nil, false
	}
	b, ok := c.Files[path]
	return b, ok
}

// Commit returns a commit by SHA.
func (s *Server) Commit(sha string) *Commit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits[sha]
}

// OpenPR opens pull request n from headRepo (owner/name; a fork when not
// this repository) whose head commit changes files on top of main.
func (s *Server) OpenPR(n int, headRepo string, files map[string][]byte, labels ...string) *PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := s.branches["main"]
	merged := map[string][]byte{}
	for k, v := range s.commits[base].Files {
		merged[k] = v
	}
	for k, v := range files {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	head := s.addCommitLocked(base, merged, fmt.Sprintf("pr %d", n))
	pr := &PR{Number: n, State: "open", Title: fmt.Sprintf("Add domains (%d)", n), HeadRef: fmt.Sprintf("add-%d", n), HeadSHA: head,
		HeadRepo: headRepo, BaseRef: "main", BaseSHA: base, Labels: labels, User: "contributor", Updated: time.Unix(1700000000+int64(n), 0).UTC()}
	s.prs[n] = pr
	return pr
}

// PushPR adds a commit to a pull request's head with files changed.
func (s *Server) PushPR(n int, files map[string][]byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	pr := s.prs[n]
	merged := map[string][]byte{}
	for k, v := range s.commits[pr.HeadSHA].Files {
		merged[k] = v
	}
	for k, v := range files {
		merged[k] = v
	}
	pr.HeadSHA = s.addCommitLocked(pr.HeadSHA, merged, "push")
	pr.Updated = pr.Updated.Add(time.Minute)
	return pr.HeadSHA
}

// SetHeadRef names the branch a pull request comes from.
func (s *Server) SetHeadRef(n int, ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prs[n].HeadRef = ref
}

// SetLabels replaces a pull request's labels (as a maintainer labelling
// it does; GitHub then moves its updated_at).
func (s *Server) SetLabels(n int, labels ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prs[n].Labels = labels
	s.prs[n].Updated = s.prs[n].Updated.Add(time.Minute)
}

// ClosePR closes pull request n without merging it (as a person may).
func (s *Server) ClosePR(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prs[n].State = "closed"
}

// DeleteBranch deletes a branch (as a person may, after closing its pull
// request).
func (s *Server) DeleteBranch(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.branches, name)
}

// PR returns a copy of pull request n (nil if none).
func (s *Server) PR(n int) *PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.prs[n]; ok {
		c := *p
		return &c
	}
	return nil
}

// PRs returns copies of every pull request, by number.
func (s *Server) PRs() []PR {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []PR
	for _, p := range s.prs {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b PR) int { return a.Number - b.Number })
	return out
}

// AddComment adds a comment by someone else.
func (s *Server) AddComment(issue int, user string, bot bool, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	s.comments = append(s.comments, &Comment{ID: s.nextID, Issue: issue, User: user, UserBot: bot, Body: body})
}

// Comments returns the comments on an issue, oldest first.
func (s *Server) Comments(issue int) []Comment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Comment
	for _, c := range s.comments {
		if c.Issue == issue {
			out = append(out, *c)
		}
	}
	return out
}

// Statuses returns the statuses set on a commit, oldest first.
func (s *Server) Statuses(sha string) []Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Status
	for _, st := range s.statuses {
		if st.SHA == sha {
			out = append(out, st)
		}
	}
	return out
}

// Calls returns every recorded request.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// CallCount counts the recorded requests with this method whose path
// matches the regular expression.
func (s *Server) CallCount(method, pathRE string) int {
	re := regexp.MustCompile(pathRE)
	n := 0
	for _, c := range s.Calls() {
		if c.Method == method && re.MatchString(c.Path) {
			n++
		}
	}
	return n
}

// RawBytes is how many bytes of raw file content were sent.
func (s *Server) RawBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rawBytes
}

// SecondaryRateLimit makes the next n requests fail as GitHub's secondary
// rate limit does: status 403 or 429 with a message saying so, the
// primary limit not spent (X-RateLimit-Remaining above 0, its reset an
// hour away), and Retry-After: retryAfter seconds when retryAfter > 0.
func (s *Server) SecondaryRateLimit(n, status, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limitN, s.limitStatus, s.limitRetry, s.limitSecondary = n, status, retryAfter, true
}

// RateLimit makes the next n requests fail: status 403 with
// X-RateLimit-Remaining: 0 and X-RateLimit-Reset, or 429 with also
// Retry-After: retryAfter seconds.
func (s *Server) RateLimit(n, status int, reset time.Time, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limitN, s.limitStatus, s.limitReset, s.limitRetry, s.limitSecondary = n, status, reset, retryAfter, false
}

type fault struct {
	method string
	path   *regexp.Regexp
	status int
	n      int
}

// Fail makes the next n requests with this method whose path (without
// /api/v3) matches the regular expression fail with status, as GitHub
// does when it has trouble (502, 503).
func (s *Server) Fail(method, pathRE string, status, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, fault{method: method, path: regexp.MustCompile(pathRE), status: status, n: n})
}

type apiError struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url,omitempty"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		body = make([]byte, 0, 512)
		buf := make([]byte, 32<<10)
		for {
			n, err := r.Body.Read(buf)
			body = append(body, buf[:n]...)
			if err != nil || len(body) > 64<<20 {
				break
			}
		}
	}
	path := strings.TrimPrefix(r.URL.Path, "/api/v3")
	rec := &recorder{ResponseWriter: w, status: 200}
	defer func() {
		s.mu.Lock()
		s.calls = append(s.calls, Call{Method: r.Method, Path: path, Query: r.URL.Query(), Status: rec.status, Body: string(body)})
		s.mu.Unlock()
	}()
	w = rec
	if !strings.HasPrefix(r.URL.Path, "/api/v3/") {
		writeJSON(w, 404, apiError{Message: "Not Found"})
		return
	}
	if s.Token != "" && r.Header.Get("Authorization") != "Bearer "+s.Token {
		writeJSON(w, 401, apiError{Message: "Bad credentials"})
		return
	}
	s.mu.Lock()
	if s.limitN > 0 {
		s.limitN--
		st, reset, retry := s.limitStatus, s.limitReset, s.limitRetry
		if s.limitSecondary {
			s.mu.Unlock()
			w.Header().Set("X-RateLimit-Limit", "5000")
			w.Header().Set("X-RateLimit-Remaining", "4990")
			w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))
			if retry > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(retry))
			}
			writeJSON(w, st, apiError{Message: "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."})
			return
		}
		s.mu.Unlock()
		w.Header().Set("X-RateLimit-Limit", "5000")
		w.Header().Set("X-RateLimit-Remaining", "0")
		w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
		if st == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(retry))
		}
		writeJSON(w, st, apiError{Message: "API rate limit exceeded", DocumentationURL: "https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"})
		return
	}
	for i := range s.faults {
		f := &s.faults[i]
		if f.n > 0 && f.method == r.Method && f.path.MatchString(path) {
			f.n--
			s.mu.Unlock()
			writeJSON(w, f.status, apiError{Message: http.StatusText(f.status)})
			return
		}
	}
	s.mu.Unlock()
	w.Header().Set("X-RateLimit-Limit", "5000")
	w.Header().Set("X-RateLimit-Remaining", "4999")
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10))

	repoPrefix := "/repos/" + s.Owner + "/" + s.Name
	if path == "/user" {
		writeJSON(w, 403, apiError{Message: "Resource not accessible by integration"})
		return
	}
	rest, ok := strings.CutPrefix(path, repoPrefix)
	if !ok {
		writeJSON(w, 404, apiError{Message: "Not Found"})
		return
	}
	s.route(w, r, rest, body)
}

var (
	rePull         = regexp.MustCompile(`^/pulls/(\d+)$`)
	rePullFiles    = regexp.MustCompile(`^/pulls/(\d+)/files$`)
	rePullMerge    = regexp.MustCompile(`^/pulls/(\d+)/merge$`)
	reContents     = regexp.MustCompile(`^/contents/(.+)$`)
	reIssueComment = regexp.MustCompile(`^/issues/(\d+)/comments$`)
	reComment      = regexp.MustCompile(`^/issues/comments/(\d+)$`)
	reStatus       = regexp.MustCompile(`^/statuses/([0-9a-f]{40})$`)
	reGetRef       = regexp.MustCompile(`^/git/ref/(heads/.+)$`)
	reRef          = regexp.MustCompile(`^/git/refs/(heads/.+)$`)
	reCommit       = regexp.MustCompile(`^/git/commits/([0-9a-f]{40})$`)
)

func (s *Server) route(w http.ResponseWriter, r *http.Request, rest string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := r.Method
	switch {
	case rest == "" && m == "GET":
		writeJSON(w, 200, s.repoJSON(s.Owner+"/"+s.Name))
	case rest == "/pulls" && m == "GET":
		s.listPulls(w, r)
	case rest == "/pulls" && m == "POST":
		s.createPull(w, body)
	case rePull.MatchString(rest):
		n, _ := strconv.Atoi(rePull.FindStringSubmatch(rest)[1])
		pr, ok := s.prs[n]
		if !ok {
			writeJSON(w, 404, apiError{Message: "Not Found"})
			return
		}
		switch m {
		case "GET":
			writeJSON(w, 200, s.prJSON(pr))
		case "PATCH":
			var in struct{ Title, Body *string }
			if json.Unmarshal(body, &in) != nil {
				writeJSON(w, 400, apiError{Message: "Problems parsing JSON"})
				return
			}
			if in.Title != nil {
				pr.Title = *in.Title
			}
			if in.Body != nil {
				pr.Body = *in.Body
			}
			writeJSON(w, 200, s.prJSON(pr))
		default:
			writeJSON(w, 404, apiError{Message: "Not Found"})
		}
	case rePullFiles.MatchString(rest) && m == "GET":
		n, _ := strconv.Atoi(rePullFiles.FindStringSubmatch(rest)[1])
		s.pullFiles(w, r, n)
	case rePullMerge.MatchString(rest) && m == "PUT":
		n, _ := strconv.Atoi(rePullMerge.FindStringSubmatch(rest)[1])
		s.merge(w, n, body)
	case reContents.MatchString(rest) && m == "GET":
		s.contents(w, r, reContents.FindStringSubmatch(rest)[1])
	case reIssueComment.MatchString(rest):
		n, _ := strconv.Atoi(reIssueComment.FindStringSubmatch(rest)[1])
		switch m {
		case "GET":
			s.listComments(w, r, n)
		case "POST":
			var in struct{ Body string }
			if json.Unmarshal(body, &in) != nil || in.Body == "" {
				writeJSON(w, 422, apiError{Message: "Validation Failed"})
				return
			}
			if len(in.Body) > 65536 {
				writeJSON(w, 422, apiError{Message: "Validation Failed: body is too long (maximum is 65536 characters)"})
				return
			}
			s.nextID++
			c := &Comment{ID: s.nextID, Issue: n, User: s.BotLogin, UserBot: true, Body: in.Body}
			s.comments = append(s.comments, c)
			writeJSON(w, 201, s.commentJSON(c))
		default:
			writeJSON(w, 404, apiError{Message: "Not Found"})
		}
	case reComment.MatchString(rest) && m == "PATCH":
		id, _ := strconv.ParseInt(reComment.FindStringSubmatch(rest)[1], 10, 64)
		var in struct{ Body string }
		if json.Unmarshal(body, &in) != nil || in.Body == "" || len(in.Body) > 65536 {
			writeJSON(w, 422, apiError{Message: "Validation Failed"})
			return
		}
		for _, c := range s.comments {
			if c.ID == id {
				if c.User != s.BotLogin {
					writeJSON(w, 403, apiError{Message: "Resource not accessible by integration"})
					return
				}
				c.Body = in.Body
				writeJSON(w, 200, s.commentJSON(c))
				return
			}
		}
		writeJSON(w, 404, apiError{Message: "Not Found"})
	case reStatus.MatchString(rest) && m == "POST":
		sha := reStatus.FindStringSubmatch(rest)[1]
		var in struct {
			State       string `json:"state"`
			TargetURL   string `json:"target_url"`
			Description string `json:"description"`
			Context     string `json:"context"`
		}
		if json.Unmarshal(body, &in) != nil || !slices.Contains([]string{"error", "failure", "pending", "success"}, in.State) || len(in.Description) > 140 {
			writeJSON(w, 422, apiError{Message: "Validation Failed"})
			return
		}
		if _, ok := s.commits[sha]; !ok {
			writeJSON(w, 422, apiError{Message: "No commit found for SHA: " + sha})
			return
		}
		if in.Context == "" {
			in.Context = "default"
		}
		s.statuses = append(s.statuses, Status{SHA: sha, State: in.State, Context: in.Context, Description: in.Description, TargetURL: in.TargetURL})
		writeJSON(w, 201, map[string]any{"state": in.State, "context": in.Context, "description": in.Description, "target_url": in.TargetURL})
	case reGetRef.MatchString(rest) && m == "GET":
		ref := reGetRef.FindStringSubmatch(rest)[1]
		sha, ok := s.branches[strings.TrimPrefix(ref, "heads/")]
		if !ok {
			writeJSON(w, 404, apiError{Message: "Not Found"})
			return
		}
		writeJSON(w, 200, refJSON(ref, sha))
	case rest == "/git/refs" && m == "POST":
		var in struct{ Ref, SHA string }
		if json.Unmarshal(body, &in) != nil || !strings.HasPrefix(in.Ref, "refs/heads/") {
			writeJSON(w, 422, apiError{Message: "Validation Failed"})
			return
		}
		name := strings.TrimPrefix(in.Ref, "refs/heads/")
		if _, ok := s.branches[name]; ok {
			writeJSON(w, 422, apiError{Message: "Reference already exists"})
			return
		}
		if _, ok := s.commits[in.SHA]; !ok {
			writeJSON(w, 422, apiError{Message: "Object does not exist"})
			return
		}
		s.branches[name] = in.SHA
		writeJSON(w, 201, refJSON("heads/"+name, in.SHA))
	case reRef.MatchString(rest) && m == "PATCH":
		ref := reRef.FindStringSubmatch(rest)[1]
		name := strings.TrimPrefix(ref, "heads/")
		var in struct {
			SHA   string
			Force bool
		}
		if json.Unmarshal(body, &in) != nil {
			writeJSON(w, 422, apiError{Message: "Validation Failed"})
			return
		}
		old, ok := s.branches[name]
		if !ok {
			writeJSON(w, 422, apiError{Message: "Reference does not exist"})
			return
		}
		if _, ok := s.commits[in.SHA]; !ok {
			writeJSON(w, 422, apiError{Message: "Object does not exist"})
			return
		}
		if !in.Force && !s.descends(in.SHA, old) {
			writeJSON(w, 422, apiError{Message: "Update is not a fast forward"})
			return
		}
		s.branches[name] = in.SHA
		for _, pr := range s.prs {
			if pr.State == "open" && pr.HeadRepo == s.Owner+"/"+s.Name && pr.HeadRef == name {
				pr.HeadSHA = in.SHA
			}
		}
		writeJSON(w, 200, refJSON(ref, in.SHA))
	case reCommit.MatchString(rest) && m == "GET":
		c, ok := s.commits[reCommit.FindStringSubmatch(rest)[1]]
		if !ok {
			writeJSON(w, 404, apiError{Message: "Not Found"})
			return
		}
		parents := []map[string]any{}
		for _, p := range c.Parents {
			parents = append(parents, map[string]any{"sha": p})
		}
		writeJSON(w, 200, map[string]any{"sha": c.SHA, "message": c.Message, "tree": map[string]any{"sha": c.Tree}, "parents": parents})
	case rest == "/git/trees" && m == "POST":
		s.createTree(w, body)
	case rest == "/git/commits" && m == "POST":
		s.createCommit(w, body)
	default:
		writeJSON(w, 404, apiError{Message: "Not Found"})
	}
}

func (s *Server) descends(sha, ancestor string) bool {
	for i := 0; sha != "" && i < 10000; i++ {
		if sha == ancestor {
			return true
		}
		c := s.commits[sha]
		if c == nil || len(c.Parents) == 0 {
			return false
		}
		sha = c.Parents[0]
	}
	return false
}

func (s *Server) commitLocked(ref string) *Commit {
	if sha, ok := s.branches[ref]; ok {
		ref = sha
	}
	return s.commits[ref]
}

func (s *Server) repoJSON(full string) map[string]any {
	owner, name, _ := strings.Cut(full, "/")
	return map[string]any{"id": 1, "name": name, "full_name": full, "fork": full != s.Owner+"/"+s.Name,
		"html_url": s.URL + "/" + full, "default_branch": "main", "owner": map[string]any{"login": owner, "type": "Organization"}}
}

func (s *Server) prJSON(pr *PR) map[string]any {
	labels := []map[string]any{}
	for _, l := range pr.Labels {
		labels = append(labels, map[string]any{"name": l})
	}
	headOwner, _, _ := strings.Cut(pr.HeadRepo, "/")
	// A pull request whose fork was deleted has "repo": null.
	var headRepo any
	if pr.HeadRepo != "" {
		headRepo = s.repoJSON(pr.HeadRepo)
	}
	return map[string]any{
		"number": pr.Number, "state": pr.State, "merged": pr.Merged, "title": pr.Title, "body": pr.Body,
		"html_url": s.PRURL(pr.Number), "labels": labels, "updated_at": pr.Updated.Format(time.RFC3339),
		"user": map[string]any{"login": pr.User, "type": "User"},
		"head": map[string]any{"ref": pr.HeadRef, "sha": pr.HeadSHA, "label": headOwner + ":" + pr.HeadRef, "repo": headRepo},
		"base": map[string]any{"ref": pr.BaseRef, "sha": pr.BaseSHA, "label": s.Owner + ":" + pr.BaseRef, "repo": s.repoJSON(s.Owner + "/" + s.Name)},
	}
}

func (s *Server) commentJSON(c *Comment) map[string]any {
	typ := "User"
	if c.UserBot {
		typ = "Bot"
	}
	return map[string]any{"id": c.ID, "body": c.Body, "user": map[string]any{"login": c.User, "type": typ},
		"html_url": fmt.Sprintf("%s#issuecomment-%d", s.PRURL(c.Issue), c.ID)}
}

func refJSON(ref, sha string) map[string]any {
	return map[string]any{"ref": "refs/" + ref, "object": map[string]any{"sha": sha, "type": "commit"}}
}

// page cuts items for ?page=&per_page= (default 30, at most 100) and sets
// the Link header as GitHub does.
func page[T any](w http.ResponseWriter, r *http.Request, items []T) []T {
	q := r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	p, _ := strconv.Atoi(q.Get("page"))
	if p <= 0 {
		p = 1
	}
	from := min((p-1)*per, len(items))
	to := min(from+per, len(items))
	if to < len(items) {
		u := *r.URL
		q.Set("page", strconv.Itoa(p+1))
		u.RawQuery = q.Encode()
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, u.String()))
	}
	return items[from:to]
}

func (s *Server) listPulls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var prs []*PR
	for _, pr := range s.prs {
		if state != "all" && pr.State != state {
			continue
		}
		if h := q.Get("head"); h != "" {
			owner, _, _ := strings.Cut(pr.HeadRepo, "/")
			if owner+":"+pr.HeadRef != h {
				continue
			}
		}
		prs = append(prs, pr)
	}
	slices.SortFunc(prs, func(a, b *PR) int { return b.Number - a.Number })
	out := []map[string]any{}
	for _, pr := range page(w, r, prs) {
		out = append(out, s.prJSON(pr))
	}
	b, _ := json.Marshal(out)
	sum := sha256.Sum256(b)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		// GitHub: a 304 does not count against the rate limit (for an
		// authorized request). RFC 9110 §15.4.5: a 304 repeats only the
		// validators and caching headers, so no Link.
		w.Header().Del("Link")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(200)
	w.Write(b)
}

func (s *Server) createPull(w http.ResponseWriter, body []byte) {
	var in struct{ Title, Head, Base, Body string }
	if json.Unmarshal(body, &in) != nil || in.Title == "" || in.Head == "" || in.Base == "" {
		writeJSON(w, 422, apiError{Message: "Validation Failed"})
		return
	}
	head := in.Head
	if o, b, ok := strings.Cut(head, ":"); ok && o == s.Owner {
		head = b
	}
	sha, ok := s.branches[head]
	if !ok {
		writeJSON(w, 422, apiError{Message: "Validation Failed: head does not exist"})
		return
	}
	for _, pr := range s.prs {
		if pr.State == "open" && pr.HeadRef == head && pr.HeadRepo == s.Owner+"/"+s.Name {
			writeJSON(w, 422, apiError{Message: "Validation Failed: A pull request already exists for " + s.Owner + ":" + head + "."})
			return
		}
	}
	n := 1
	for k := range s.prs {
		n = max(n, k+1)
	}
	pr := &PR{Number: n, State: "open", Title: in.Title, Body: in.Body, HeadRef: head, HeadSHA: sha, HeadRepo: s.Owner + "/" + s.Name,
		BaseRef: in.Base, BaseSHA: s.branches[in.Base], User: s.BotLogin, Updated: time.Unix(1700000000, 0).UTC()}
	s.prs[n] = pr
	writeJSON(w, 201, s.prJSON(pr))
}

func (s *Server) merge(w http.ResponseWriter, n int, body []byte) {
	pr, ok := s.prs[n]
	if !ok {
		writeJSON(w, 404, apiError{Message: "Not Found"})
		return
	}
	if pr.State != "open" {
		writeJSON(w, 405, apiError{Message: "Pull Request is not mergeable"})
		return
	}
	var in struct {
		SHA         string `json:"sha"`
		MergeMethod string `json:"merge_method"`
	}
	json.Unmarshal(body, &in)
	if in.SHA != "" && in.SHA != pr.HeadSHA {
		writeJSON(w, 409, apiError{Message: "Head branch was modified. Review and try the merge again."})
		return
	}
	base := s.branches[pr.BaseRef]
	files := map[string][]byte{}
	for k, v := range s.commits[base].Files {
		files[k] = v
	}
	for k, v := range s.commits[pr.HeadSHA].Files {
		files[k] = v
	}
	sha := s.addCommitLocked(base, files, "Merge pull request #"+strconv.Itoa(n))
	s.branches[pr.BaseRef] = sha
	pr.State, pr.Merged = "closed", true
	writeJSON(w, 200, map[string]any{"sha": sha, "merged": true, "message": "Pull Request successfully merged"})
}

func (s *Server) pullFiles(w http.ResponseWriter, r *http.Request, n int) {
	pr, ok := s.prs[n]
	if !ok {
		writeJSON(w, 404, apiError{Message: "Not Found"})
		return
	}
	base, head := s.commits[pr.BaseSHA], s.commits[pr.HeadSHA]
	var names []string
	seen := map[string]bool{}
	for k, v := range head.Files {
		seen[k] = true
		if old, ok := base.Files[k]; !ok || string(old) != string(v) {
			names = append(names, k)
		}
	}
	for k := range base.Files {
		if !seen[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := []map[string]any{}
	for _, k := range page(w, r, names) {
		status := "modified"
		if _, ok := base.Files[k]; !ok {
			status = "added"
		} else if _, ok := head.Files[k]; !ok {
			status = "removed"
		}
		out = append(out, map[string]any{"filename": k, "status": status})
	}
	writeJSON(w, 200, out)
}

// contents answers GET /contents/{path}?ref=: base64 content for files up
// to 1 MB; above, "encoding": "none" and no content, unless the raw media
// type is asked for (GitHub serves raw files up to 100 MB).
func (s *Server) contents(w http.ResponseWriter, r *http.Request, path string) {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		ref = "main"
	}
	c := s.commitLocked(ref)
	if c == nil {
		writeJSON(w, 404, apiError{Message: "No commit found for the ref " + ref})
		return
	}
	b, ok := c.Files[path]
	if !ok {
		writeJSON(w, 404, apiError{Message: "Not Found"})
		return
	}
	if strings.Contains(r.Header.Get("Accept"), "application/vnd.github.raw") {
		if len(b) > 100<<20 {
			writeJSON(w, 403, apiError{Message: "This API returns blobs up to 100 MB in size."})
			return
		}
		w.Header().Set("Content-Type", "application/vnd.github.raw")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(200)
		// Written in pieces, counting what the client actually took.
		for off := 0; off < len(b); off += 64 << 10 {
			end := min(off+64<<10, len(b))
			n, err := w.Write(b[off:end])
			s.rawBytes += int64(n)
			if err != nil {
				return
			}
		}
		return
	}
	out := map[string]any{"type": "file", "name": path[strings.LastIndex(path, "/")+1:], "path": path, "size": len(b),
		"sha": fmt.Sprintf("%x", sha1.Sum(b))}
	if len(b) <= 1<<20 {
		out["encoding"] = "base64"
		out["content"] = base64.StdEncoding.EncodeToString(b)
	} else {
		out["encoding"] = "none"
		out["content"] = ""
	}
	writeJSON(w, 200, out)
}

func (s *Server) listComments(w http.ResponseWriter, r *http.Request, n int) {
	var cs []*Comment
	for _, c := range s.comments {
		if c.Issue == n {
			cs = append(cs, c)
		}
	}
	out := []map[string]any{}
	for _, c := range page(w, r, cs) {
		out = append(out, s.commentJSON(c))
	}
	writeJSON(w, 200, out)
}

func (s *Server) createTree(w http.ResponseWriter, body []byte) {
	var in struct {
		BaseTree string `json:"base_tree"`
		Tree     []struct {
			Path    string  `json:"path"`
			Mode    string  `json:"mode"`
			Type    string  `json:"type"`
			Content *string `json:"content"`
		} `json:"tree"`
	}
	if json.Unmarshal(body, &in) != nil || len(in.Tree) == 0 {
		writeJSON(w, 422, apiError{Message: "Validation Failed"})
		return
	}
	files := map[string][]byte{}
	if in.BaseTree != "" {
		base, ok := s.trees[in.BaseTree]
		if !ok {
			writeJSON(w, 422, apiError{Message: "base_tree is not a valid tree"})
			return
		}
		for k, v := range base {
			files[k] = v
		}
	}
	for _, e := range in.Tree {
		if e.Type != "blob" || e.Mode != "100644" || e.Content == nil {
			writeJSON(w, 422, apiError{Message: "Validation Failed"})
			return
		}
		files[e.Path] = []byte(*e.Content)
	}
	sha := s.treeSHA(files)
	writeJSON(w, 201, map[string]any{"sha": sha})
}

func (s *Server) createCommit(w http.ResponseWriter, body []byte) {
	var in struct {
		Message string   `json:"message"`
		Tree    string   `json:"tree"`
		Parents []string `json:"parents"`
	}
	if json.Unmarshal(body, &in) != nil || in.Message == "" {
		writeJSON(w, 422, apiError{Message: "Validation Failed"})
		return
	}
	files, ok := s.trees[in.Tree]
	if !ok {
		writeJSON(w, 422, apiError{Message: "Tree SHA does not exist"})
		return
	}
	parent := ""
	if len(in.Parents) > 0 {
		parent = in.Parents[0]
		if _, ok := s.commits[parent]; !ok {
			writeJSON(w, 422, apiError{Message: "Parent SHA does not exist"})
			return
		}
	}
	sha := s.addCommitLocked(parent, files, in.Message)
	writeJSON(w, 201, map[string]any{"sha": sha, "message": in.Message, "tree": map[string]any{"sha": in.Tree}})
}

// treeSHA registers a tree of files and returns its SHA.
func (s *Server) treeSHA(files map[string][]byte) string {
	h := sha1.New()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "%s %x\n", k, sha256.Sum256(files[k]))
	}
	sha := hex.EncodeToString(h.Sum(nil))
	s.trees[sha] = files
	return sha
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
