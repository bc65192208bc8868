package prdoor

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
)

func publishedList(t *testing.T, serial int64, domains ...string) []byte {
	t.Helper()
	l, err := listgen.Parse(listBytes(t, domains...))
	if err != nil {
		t.Fatal(err)
	}
	l.Serial = serial
	b, err := listgen.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestListPublisher: the first list opens the pull request, the next one
// updates the same pull request (branch moved, body rewritten); a list
// already on the base branch does nothing; with AutoMerge the base branch
// gets the bytes.
func TestListPublisher(t *testing.T) {
	e := newEnv(t, "listed.test", "leaving.test")
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	at := time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC)
	for _, d := range []store.Domain{{Name: "new.test", State: store.StateValidating, MXPatterns: []string{"mx.good.test"}}, {Name: "leaving.test", State: store.StateTesting}} {
		if err := st.AddDomain(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Transition(ctx, "new.test", store.StateValidating, store.StateTesting, "admission.admitted: 28 passing checks since 2026-11-13 | <b>", at); err != nil {
		t.Fatal(err)
	}
	p := &ListPublisher{Door: e.door, Decisions: st}

	first := publishedList(t, 2, "listed.test", "leaving.test", "new.test")
	r1, err := p.Publish(ctx, first, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !r1.Created || r1.Number == 0 || len(r1.Changes) != 1 {
		t.Fatalf("first: %+v", r1)
	}
	if b, _ := e.gh.File(DefaultListBranch, "policy-list.json"); string(b) != string(first) {
		t.Fatalf("branch holds %q", b)
	}
	pr := e.gh.PR(r1.Number)
	if pr.HeadRef != DefaultListBranch || pr.BaseRef != "main" || !strings.Contains(pr.Title, "serial 2") ||
		!strings.Contains(pr.Body, "`new.test` | added | enforce mx.good.test | admission\\.admitted\\: 28 passing checks since 2026\\-11\\-13 \\| &lt;b&gt; | 2026-11-20 |") {
		t.Fatalf("PR: %+v", pr)
	}
	if c := e.gh.Commit(e.gh.Branch(DefaultListBranch)); len(c.Parents) != 1 || c.Parents[0] != e.gh.Branch("main") {
		t.Errorf("the branch is not one commit on main: %+v", c)
	}

	if err := st.RequestRemoval(ctx, "leaving.test", "removal.requested: by owner", at.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	second := publishedList(t, 3, "listed.test", "new.test")
	r2, err := p.Publish(ctx, second, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Created || r2.Number != r1.Number {
		t.Fatalf("second: %+v, want the same PR %d updated", r2, r1.Number)
	}
	if n := len(e.gh.PRs()); n != 1 {
		t.Fatalf("%d pull requests, want 1", n)
	}
	pr = e.gh.PR(r1.Number)
	if !strings.Contains(pr.Title, "serial 3") || !strings.Contains(pr.Body, "`leaving.test` | removed") || !strings.Contains(pr.Body, "`new.test` | added") ||
		!strings.Contains(pr.Body, `removal\.requested\: by owner`) {
		t.Fatalf("updated PR: %+v", pr)
	}
	if b, _ := e.gh.File(DefaultListBranch, "policy-list.json"); string(b) != string(second) {
		t.Fatalf("branch not moved")
	}

	// Merged: the base branch holds the list, and the same bytes again
	// are up to date.
	p.AutoMerge = true
	r3, err := p.Publish(ctx, second, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !r3.Merged {
		t.Fatalf("not merged: %+v", r3)
	}
	if b, _ := e.gh.File("main", "policy-list.json"); string(b) != string(second) {
		t.Fatalf("main holds %q", b)
	}
	r4, err := p.Publish(ctx, second, 3)
	if err != nil || !r4.UpToDate {
		t.Fatalf("again: %+v %v", r4, err)
	}
}

// TestListPRIsNotChecked: pr-check answers the service's list pull
// request without checking it, and a fork's branch of the same name is
// checked like any other.
func TestListPRIsNotChecked(t *testing.T) {
	e := newEnv(t, "listed.test")
	p := &ListPublisher{Door: e.door}
	r, err := p.Publish(t.Context(), publishedList(t, 2, "listed.test", "admitted.test"), 2)
	if err != nil {
		t.Fatal(err)
	}
	o, err := e.door.CheckPR(t.Context(), r.Number)
	if err != nil {
		t.Fatal(err)
	}
	if !o.Success() || !o.Report.ServiceList || e.dns.Queries() != 0 {
		t.Fatalf("list PR: success %v, report %+v, %d DNS queries", o.Success(), o.Report, e.dns.Queries())
	}
	if st := e.finalStatus(t, e.gh.PR(r.Number).HeadSHA); st.State != "success" {
		t.Errorf("status %+v", st)
	}
	e.gh.OpenPR(50, "mallory/list", listFile(t, "listed.test", "sneaky.test"))
	e.gh.SetHeadRef(50, DefaultListBranch)
	o, err = e.door.Evaluate(t.Context(), 50)
	if err != nil {
		t.Fatal(err)
	}
	if o.Report.ServiceList || o.Success() {
		t.Fatalf("a fork's PR passed as the list PR: %+v", o.Report)
	}
}

// TestListPublisherAfterAPerson: a list pull request closed by a person,
// its branch deleted, is opened again (one open at a time), and a reason
// holding remote text pings no one from its body.
func TestListPublisherAfterAPerson(t *testing.T) {
	e := newEnv(t, "listed.test")
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	at := time.Date(2026, 11, 20, 7, 0, 0, 0, time.UTC)
	if err := st.AddDomain(ctx, store.Domain{Name: "new.test", State: store.StateValidating, MXPatterns: []string{"mx.good.test"}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Transition(ctx, "new.test", store.StateValidating, store.StateTesting, "admission.admitted: banner 220 @everyone see #1", at); err != nil {
		t.Fatal(err)
	}
	p := &ListPublisher{Door: e.door, Decisions: st}
	r1, err := p.Publish(ctx, publishedList(t, 2, "listed.test", "new.test"), 2)
	if err != nil {
		t.Fatal(err)
	}
	body := e.gh.PR(r1.Number).Body
	if strings.Contains(body, "@everyone") || strings.Contains(body, "#1") {
		t.Errorf("the body mentions or references:\n%s", body)
	}
	e.gh.ClosePR(r1.Number)
	e.gh.DeleteBranch(DefaultListBranch)
	r2, err := p.Publish(ctx, publishedList(t, 3, "listed.test", "new.test"), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Created || r2.Number == r1.Number {
		t.Fatalf("after the close: %+v", r2)
	}
	open := 0
	for _, pr := range e.gh.PRs() {
		if pr.State == "open" {
			open++
		}
	}
	if open != 1 || e.gh.Branch(DefaultListBranch) == "" {
		t.Fatalf("%d open list pull requests, branch %q", open, e.gh.Branch(DefaultListBranch))
	}
}

// TestListPublisherRetryWritesNothingNew: publishing the same list again
// on the same base (a retry after a failed merge, a restart) makes no new
// commit and does not move the branch, so a retried job does not churn
// the pull request (each push would start its checks again).
func TestListPublisherRetryWritesNothingNew(t *testing.T) {
	e := newEnv(t, "listed.test")
	p := &ListPublisher{Door: e.door}
	list := publishedList(t, 2, "listed.test", "new.test")
	r1, err := p.Publish(t.Context(), list, 2)
	if err != nil {
		t.Fatal(err)
	}
	head := e.gh.Branch(DefaultListBranch)
	commits := e.gh.CallCount("POST", `/git/commits$`)
	r2, err := p.Publish(t.Context(), list, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r2.Number != r1.Number || r2.Created {
		t.Fatalf("again: %+v", r2)
	}
	if n := e.gh.CallCount("POST", `/git/commits$`); n != commits {
		t.Errorf("%d new commits for the same list", n-commits)
	}
	if n := e.gh.CallCount("PATCH", `/git/refs/`); n != 0 || e.gh.Branch(DefaultListBranch) != head {
		t.Errorf("branch moved (%d updates)", n)
	}
}

// snapshots is a ListSource serving cur (nil: nothing published).
type snapshots struct{ cur *publish.Snapshot }

func (s *snapshots) Current(context.Context) (*publish.Snapshot, error) {
	if s.cur == nil {
		return nil, publish.ErrNotFound
	}
	return s.cur, nil
}

// TestListJob: nothing published is no error; a list is proposed once,
// however often the job runs, and a newer serial is proposed again.
func TestListJob(t *testing.T) {
	e := newEnv(t, "listed.test")
	st := memstore.New()
	t.Cleanup(func() { st.Close() })
	ctx := t.Context()
	src := &snapshots{}
	j := &ListJob{Publisher: &ListPublisher{Door: e.door, Decisions: st}, Source: src, Log: slog.New(slog.DiscardHandler)}

	if err := j.Run(ctx); err != nil {
		t.Fatalf("nothing published: %v", err)
	}
	src.cur = &publish.Snapshot{Serial: 2, List: publishedList(t, 2, "listed.test", "new.test")}
	for range 2 {
		if err := j.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.gh.PRs()); n != 1 {
		t.Fatalf("%d pull requests, want 1", n)
	}
	before := len(e.gh.Calls())
	if err := j.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(e.gh.Calls()); got != before {
		t.Errorf("serial 2 proposed again: %d API calls, want none", got-before)
	}
	src.cur = &publish.Snapshot{Serial: 3, List: publishedList(t, 3, "new.test")}
	if err := j.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ := e.gh.File(DefaultListBranch, "policy-list.json"); string(b) != string(src.cur.List) {
		t.Errorf("serial 3 not proposed: the branch holds %q", b)
	}
}
