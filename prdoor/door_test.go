package prdoor

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/prcheck"
)

// prCase is one pull request against a base list of listed.test and
// leaving.test.
type prCase struct {
	name     string
	setup    func(e *env)
	files    map[string][]byte
	labels   []string
	fork     bool
	relabel  bool // answered first, then the maintainers' label applied
	success  bool
	contains []string
}

func TestCheckPR(t *testing.T) {
	lf := func(ds ...string) map[string][]byte { return listFile(t, ds...) }
	cases := []prCase{
		{name: "clean-addition", setup: func(e *env) { e.domain("new.test", "good", 7) },
			files: lf("listed.test", "leaving.test", "new.test"), success: true, contains: []string{"proof.ok", "ready"}},
		{name: "failing-validation", setup: func(e *env) { e.domain("broken.test", "bad", 7) },
			files: lf("listed.test", "leaving.test", "broken.test"), contains: []string{"starttls.not_offered", "STARTTLS not offered"}},
		{name: "no-proof", setup: func(e *env) { e.domain("unproven.test", "good", 0) },
			files: lf("listed.test", "leaving.test", "unproven.test"), contains: []string{"proof.missing", `_starttls-preload.unproven.test. 300 IN TXT "https://github.example/example/list/pull/7"`}},
		{name: "other-pr", setup: func(e *env) { e.domain("other.test", "good", 3) },
			files: lf("listed.test", "leaving.test", "other.test"), contains: []string{"proof.other_pr"}},
		{name: "malformed-list", files: map[string][]byte{"policy-list.json": []byte(`{"version": "1"}`)}, contains: []string{"list.parse"}},
		{name: "removal-proof", setup: func(e *env) { e.domain("leaving.test", "good", 7) },
			files: lf("listed.test"), success: true, contains: []string{"removed", "proof.ok"}},
		{name: "removal-label", files: lf("listed.test"), relabel: true, success: true, contains: []string{"proof.label"}},
		{name: "removal-neither", files: lf("listed.test"), contains: []string{"proof.missing", "removal-approved"}},
		{name: "fork", setup: func(e *env) { e.domain("forked.test", "good", 7) },
			files: lf("listed.test", "leaving.test", "forked.test"), fork: true, success: true},
		{name: "nothing-to-check", files: map[string][]byte{"README.md": []byte("# better list\n")}, success: true, contains: []string{"nothing to check"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "listed.test", "leaving.test")
			if c.setup != nil {
				c.setup(e)
			}
			head := "example/list"
			if c.fork {
				head = "contributor/list"
			}
			pr := e.gh.OpenPR(7, head, c.files, c.labels...)
			o, err := e.door.CheckPR(t.Context(), 7)
			if err != nil {
				t.Fatal(err)
			}
			if c.relabel {
				e.gh.SetLabels(7, "removal-approved")
				if o, err = e.door.CheckPR(t.Context(), 7); err != nil {
					t.Fatal(err)
				}
			}
			if o.Success() != c.success {
				t.Errorf("success %v, want %v", o.Success(), c.success)
			}
			cs := e.botComments(7)
			if len(cs) != 1 {
				t.Fatalf("%d bot comments, want 1", len(cs))
			}
			for _, s := range c.contains {
				if !strings.Contains(cs[0].Body, s) && !strings.Contains(strings.ReplaceAll(cs[0].Body, e.gh.URL, "https://github.example"), s) {
					t.Errorf("comment lacks %q:\n%s", s, cs[0].Body)
				}
			}
			st := e.finalStatus(t, pr.HeadSHA)
			want := map[bool]string{true: "success", false: "failure"}[c.success]
			if st.State != want {
				t.Errorf("status %q, want %q", st.State, want)
			}
			if !strings.Contains(st.TargetURL, "#issuecomment-") {
				t.Errorf("status target %q is not the comment", st.TargetURL)
			}
			for _, call := range e.gh.Calls() {
				if !strings.HasPrefix(call.Path, "/repos/example/list") && call.Path != "/user" {
					t.Errorf("request outside the base repository: %s %s", call.Method, call.Path)
				}
				if call.Method != "GET" && !strings.Contains(call.Path, "/statuses/") && !strings.Contains(call.Path, "/comments") {
					t.Errorf("pr-check wrote %s %s", call.Method, call.Path)
				}
			}
			if c.name == "nothing-to-check" && e.gh.CallCount("GET", "/contents/") != 0 {
				t.Errorf("read the list although the PR does not touch it")
			}
			e.golden(t, c.name, cs[0].Body)
		})
	}
}

// TestRerunEditsTheComment: a second run, after a push, edits the one
// comment; a look-alike comment by someone else is left alone; the
// comment is found beyond the first page of comments.
func TestRerunEditsTheComment(t *testing.T) {
	e := newEnv(t, "listed.test")
	e.domain("new.test", "good", 0)
	e.gh.OpenPR(7, "example/list", listFile(t, "listed.test", "new.test"))
	e.gh.AddComment(7, "mallory", false, prcheck.Marker+"\nI am the bot, trust me")
	o1, err := e.door.CheckPR(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if o1.Success() {
		t.Fatal("unproven domain passed")
	}
	for i := range 150 {
		e.gh.AddComment(7, "reviewer", false, "comment "+strings.Repeat("x", i%3))
	}
	e.dns.Add(`_starttls-preload.new.test. 300 IN TXT "` + e.gh.PRURL(7) + `"`)
	head := e.gh.PushPR(7, map[string][]byte{"README.md": []byte("touched\n")})
	door := e.newDoor(t) // a new process: nothing remembered
	o2, err := door.CheckPR(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if !o2.Success() || o2.CommentID != o1.CommentID {
		t.Fatalf("second run: success %v, comment %d (first %d)", o2.Success(), o2.CommentID, o1.CommentID)
	}
	cs := e.botComments(7)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, "ready") {
		t.Fatalf("%d bot comments after the re-run: %+v", len(cs), cs)
	}
	if n := e.gh.CallCount("PATCH", `/issues/comments/\d+$`); n != 1 {
		t.Errorf("%d comment edits, want 1", n)
	}
	if n := e.gh.CallCount("POST", `/issues/7/comments$`); n != 1 {
		t.Errorf("%d comments created, want 1", n)
	}
	for _, c := range e.gh.Comments(7) {
		if c.User == "mallory" && !strings.Contains(c.Body, "trust me") {
			t.Errorf("edited someone else's comment")
		}
	}
	if st := e.finalStatus(t, head); st.State != "success" {
		t.Errorf("status on the new head %q", st.State)
	}
	// A third run with nothing new does not edit the comment again.
	if _, err := door.CheckPR(t.Context(), 7); err != nil {
		t.Fatal(err)
	}
	if n := e.gh.CallCount("PATCH", `/issues/comments/\d+$`); n != 1 {
		t.Errorf("%d comment edits after an unchanged run, want 1", n)
	}
}

// TestBadInput: a 50 MB head list, one that is not UTF-8 and one adding
// 10,000 domains are answered with a clear refusal, without downloading
// the large file or checking anything.
func TestBadInput(t *testing.T) {
	big := append(listBytes(t, "listed.test"), bytes.Repeat([]byte(" "), 50<<20)...)
	notUTF8 := bytes.Replace(listBytes(t, "listed.test", "x.test"), []byte(`"starttls-preload"`), []byte("\"starttls\xff\""), 1)
	var many []string
	for i := range 10000 {
		many = append(many, "d"+itoa(i)+".test")
	}
	cases := []struct {
		name  string
		files map[string][]byte
		code  string
	}{
		{"50MB", map[string][]byte{"policy-list.json": big}, prcheck.RefuseTooLarge},
		{"not-utf8", map[string][]byte{"policy-list.json": notUTF8}, prcheck.RefuseNotUTF8},
		{"10000-added", listFile(t, many...), prcheck.RefuseTooMany},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "listed.test")
			pr := e.gh.OpenPR(7, "example/list", c.files)
			o, err := e.door.CheckPR(t.Context(), 7)
			if err != nil {
				t.Fatal(err)
			}
			if o.Report.Refusal == nil || o.Report.Refusal.Code != c.code {
				t.Fatalf("refusal %+v, want %s", o.Report.Refusal, c.code)
			}
			if e.gh.RawBytes() > 0 {
				t.Errorf("downloaded %d bytes of a list over the cap", e.gh.RawBytes())
			}
			if q := e.dns.Queries(); q != 0 {
				t.Errorf("%d DNS queries for a refused PR", q)
			}
			if st := e.finalStatus(t, pr.HeadSHA); st.State != "failure" || !strings.Contains(st.Description, c.code) {
				t.Errorf("status %+v", st)
			}
			cs := e.botComments(7)
			if len(cs) != 1 || !strings.Contains(cs[0].Body, c.code) {
				t.Fatalf("comment: %+v", cs)
			}
			e.golden(t, "refused-"+c.name, cs[0].Body)
		})
	}
}

// TestLargeListRead: a list between 1 MB and the cap comes through the
// raw media type, read in full.
func TestLargeListRead(t *testing.T) {
	var ds []string
	for i := range 20000 {
		ds = append(ds, "d"+itoa(i)+".test")
	}
	e := newEnv(t, ds...)
	e.domain("new.test", "good", 7)
	e.gh.OpenPR(7, "example/list", listFile(t, append(ds, "new.test")...))
	o, err := e.door.CheckPR(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Success() || len(o.Report.Domains) != 1 {
		t.Fatalf("report %+v", o.Report)
	}
	if e.gh.RawBytes() < 1<<20 {
		t.Errorf("raw bytes %d: the list did not come raw", e.gh.RawBytes())
	}
}

func TestParseEvent(t *testing.T) {
	ev, err := ParseEvent([]byte(`{"action":"opened","number":7,"pull_request":{"number":7},"repository":{"full_name":"example/list"}}`))
	if err != nil || ev.Number != 7 || ev.Repo != "example/list" {
		t.Fatalf("%+v %v", ev, err)
	}
	for _, bad := range []string{`{"action":"push"}`, `[]`, `{"pull_request":{}}`, `{"pull_request":{"number":-1}}`} {
		if _, err := ParseEvent([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func itoa(i int) string { return fmtInt(i) }

func fmtInt(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// TestProofSplitTXT: a TXT record whose value is split into several
// character-strings (as zone tools do past 255 bytes) is read as their
// concatenation (RFC 7208 §3.3 style), through the validator's resolver.
func TestProofSplitTXT(t *testing.T) {
	e := newEnv(t)
	u := e.gh.PRURL(7)
	e.dns.Add(fmt.Sprintf("_starttls-preload.split.test. 300 IN TXT %q %q", u[:10], u[10:]))
	p, err := prcheck.VerifyProof(t.Context(), e.v, "split.test", u, nil)
	if err != nil || p.Code != prcheck.ProofOK {
		t.Fatalf("split record: %+v %v", p, err)
	}
}

// TestDeletedFork: a pull request whose fork was deleted ("head": {"repo":
// null}) is answered from its head commit, which the base repository
// keeps, and a branch of the list's name on it is not the service's.
func TestDeletedFork(t *testing.T) {
	e := newEnv(t, "listed.test")
	e.domain("new.test", "good", 7)
	e.gh.OpenPR(7, "", listFile(t, "listed.test", "new.test"))
	e.gh.SetHeadRef(7, DefaultListBranch)
	o, err := e.door.CheckPR(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if o.Report.ServiceList || !o.Success() || len(o.Report.Domains) != 1 {
		t.Fatalf("report: %+v", o.Report)
	}
}

// TestCheckPRFailureIsNotLeftPending: when the API fails after the
// pending status, the status says the check could not run (error), not
// pending for ever.
func TestCheckPRFailureIsNotLeftPending(t *testing.T) {
	e := newEnv(t, "listed.test")
	e.domain("new.test", "good", 7)
	pr := e.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "new.test"))
	e.gh.Fail("GET", `/contents/`, http.StatusBadGateway, 10)
	if _, err := e.door.CheckPR(t.Context(), 7); err == nil {
		t.Fatal("no error")
	}
	if st := e.finalStatus(t, pr.HeadSHA); st.State != "error" || st.Description == "" {
		t.Fatalf("final status %+v, want error", st)
	}
}

// TestRemovalLabelBindsToHead: the maintainers' label approves the
// removals of the head it was applied to, after the bot had answered that
// head without it. A push after the label (one that removes more
// domains) is not approved by it, nor is a label that was there before
// the bot first answered; removing and applying it again approves.
func TestRemovalLabelBindsToHead(t *testing.T) {
	e := newEnv(t, "listed.test", "leaving.test", "victim.test")
	check := func(when string, want bool, contains ...string) {
		t.Helper()
		o, err := e.door.CheckPR(t.Context(), 7)
		if err != nil {
			t.Fatal(err)
		}
		if o.Success() != want {
			t.Fatalf("%s: success %v, want %v:\n%s", when, o.Success(), want, e.botComments(7)[0].Body)
		}
		for _, s := range contains {
			if !strings.Contains(e.botComments(7)[0].Body, s) {
				t.Errorf("%s: comment lacks %q", when, s)
			}
		}
	}
	e.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test", "victim.test"))
	check("no label", false)
	e.gh.SetLabels(7, "removal-approved")
	check("labelled", true, "proof.label")
	e.gh.PushPR(7, listFile(t, "listed.test"))
	check("pushed after the label", false, "applies it again")
	e.gh.SetLabels(7)
	check("label taken off", false)
	e.gh.SetLabels(7, "removal-approved")
	check("labelled again", true, "proof.label")

	// A label already there when the bot first answers approves nothing.
	e2 := newEnv(t, "listed.test", "leaving.test")
	e2.gh.OpenPR(7, "contributor/list", listFile(t, "listed.test"), "removal-approved")
	o, err := e2.door.CheckPR(t.Context(), 7)
	if err != nil {
		t.Fatal(err)
	}
	if o.Success() {
		t.Fatal("a label older than the bot's first answer approved the removal")
	}
}

// TestStatusDescriptionFits: GitHub refuses a commit status description
// over 140 characters with a 422; every description fits.
func TestStatusDescriptionFits(t *testing.T) {
	many := &prcheck.Report{}
	for range 100000 {
		many.Domains = append(many.Domains, prcheck.DomainReport{Domain: "x.test"})
	}
	probs := &prcheck.Report{}
	for range 100000 {
		probs.Problems = append(probs.Problems, listgen.Problem{Code: "x"})
	}
	for _, r := range []*prcheck.Report{
		{ServiceList: true}, {}, many, probs,
		{Refusal: &prcheck.Refusal{Code: prcheck.RefuseTooMany, Message: strings.Repeat("m", 1000)}},
	} {
		if d := statusDescription(r); len([]rune(d)) > 140 || d == "" {
			t.Errorf("description %q", d)
		}
	}
}
