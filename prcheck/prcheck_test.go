package prcheck

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/validate"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const prURL = "https://github.com/example/list/pull/7"

// fakeChecker answers from a map: a domain absent from it passes with one
// MX host mx.<domain>.
type fakeChecker map[string]*validate.Result

func (f fakeChecker) Check(ctx context.Context, d string) (*validate.Result, error) {
	if r, ok := f[d]; ok {
		if r == nil {
			return nil, errors.New("resolver unreachable")
		}
		return r, nil
	}
	return passing(d), nil
}

func passing(d string) *validate.Result {
	return &validate.Result{Domain: d, Eligible: true, MXs: []validate.MXResult{{Host: "mx." + d, Preference: 10,
		Addresses: []validate.AddressResult{{IP: "127.0.0.2", OK: true}}}}, Findings: []validate.Finding{}}
}

// fakeTXT answers from a map; a value "ERR" is a failed look-up.
type fakeTXT map[string][]string

func (f fakeTXT) LookupTXT(ctx context.Context, name string) ([]string, error) {
	v := f[name]
	if len(v) == 1 && v[0] == "ERR" {
		return nil, errors.New("i/o timeout")
	}
	return v, nil
}

var t0 = time.Date(2026, 12, 1, 7, 0, 0, 0, time.UTC)

// listBytes returns a canonical list with one enforce policy per domain,
// MX pattern mx.<domain>.
func listBytes(t testing.TB, domains ...string) []byte {
	t.Helper()
	l := &listgen.List{Version: listgen.FormatVersion, Serial: 1, Timestamp: t0, Expires: t0.Add(7 * 24 * time.Hour),
		Author: "starttls-preload", Policies: map[string]listgen.Policy{}, PolicyAliases: map[string]listgen.Policy{}}
	for _, d := range domains {
		l.Policies[d] = listgen.Policy{Mode: listgen.ModeEnforce, MXs: []string{"mx." + d}}
	}
	b, err := listgen.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func input(base, head []byte, labels ...string) Input {
	return Input{URL: prURL, HeadSHA: "0123456789abcdef0123456789abcdef01234567", Labels: labels,
		Base: File{Absent: base == nil, Size: int64(len(base)), Data: base}, Head: File{Size: int64(len(head)), Data: head}}
}

var testOpts = Options{AllowTestTLD: true}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n%s", name, got)
	}
}

func TestDiff(t *testing.T) {
	base, _ := listgen.Parse(listBytes(t, "a.test", "b.test", "c.test"))
	head, _ := listgen.Parse(listBytes(t, "a.test", "b.test", "d.test"))
	head.Policies["b.test"] = listgen.Policy{Mode: listgen.ModeTesting, MXs: []string{"mx.b.test"}}
	// Same policy through an alias: no change.
	head.PolicyAliases["al"] = listgen.Policy{Mode: listgen.ModeEnforce, MXs: []string{"mx.a.test"}}
	head.Policies["a.test"] = listgen.Policy{PolicyAlias: "al"}
	got := Diff(base, head)
	want := []struct {
		d string
		k Kind
	}{{"b.test", Changed}, {"c.test", Removed}, {"d.test", Added}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i, w := range want {
		if got[i].Domain != w.d || got[i].Kind != w.k {
			t.Errorf("%d: got %s %s, want %s %s", i, got[i].Domain, got[i].Kind, w.d, w.k)
		}
	}
	if n := len(Diff(nil, head)); n != 3 {
		t.Errorf("against no base: %d changes, want 3 added", n)
	}
}

func TestVerifyProof(t *testing.T) {
	txt := fakeTXT{
		"_starttls-preload.ok.test":       {"v=spf1 -all", prURL},
		"_starttls-preload.slash.test":    {"HTTPS://GitHub.com/example/list/pull/7/"},
		"_starttls-preload.other.test":    {"https://github.com/example/list/pull/6"},
		"_starttls-preload.mismatch.test": {"hello", "world"},
		"_starttls-preload.err.test":      {"ERR"},
		// GitHub's owner and repository names are case-insensitive.
		"_starttls-preload.case.test": {"https://github.com/Example/List/pull/7"},
		// http is not the pull request's URL, and not another one either.
		"_starttls-preload.http.test":   {"http://github.com/example/list/pull/7"},
		"_starttls-preload.zero.test":   {"https://github.com/example/list/pull/07"},
		"_starttls-preload.anchor.test": {prURL + "#issuecomment-1"},
	}
	for _, c := range []struct {
		domain  string
		code    string
		changes bool
	}{
		{"ok.test", ProofOK, true},
		{"slash.test", ProofOK, true},
		{"ok.test", ProofNotChanged, false},
		{"other.test", ProofOtherPR, true},
		{"mismatch.test", ProofMismatch, true},
		{"missing.test", ProofMissing, true},
		{"err.test", ProofLookupFailed, true},
		{"case.test", ProofOK, true},
		{"http.test", ProofMismatch, true},
		{"zero.test", ProofOtherPR, true},
		{"anchor.test", ProofMismatch, true},
	} {
		p, err := VerifyProof(t.Context(), txt, c.domain, prURL, func(string) bool { return c.changes })
		if err != nil {
			t.Fatal(err)
		}
		if p.Code != c.code || p.Proven != (c.code == ProofOK) {
			t.Errorf("%s: %+v, want %s", c.domain, p, c.code)
		}
		if p.Record != `_starttls-preload.`+c.domain+`. 300 IN TXT "`+prURL+`"` {
			t.Errorf("%s: record %q", c.domain, p.Record)
		}
	}
}

// TestEvaluateGolden answers the pull requests of the issue and compares
// each comment with its golden file.
func TestEvaluateGolden(t *testing.T) {
	base := listBytes(t, "listed.test", "leaving.test")
	proofs := fakeTXT{
		"_starttls-preload.new.test":     {prURL},
		"_starttls-preload.broken.test":  {prURL},
		"_starttls-preload.leaving.test": {prURL},
	}
	bad := &validate.Result{Domain: "broken.test", MXs: []validate.MXResult{{Host: "mx.broken.test", Addresses: []validate.AddressResult{{IP: "127.0.0.3"}}}},
		Findings: []validate.Finding{{Code: "starttls.not_offered", Severity: validate.SeverityError, Summary: "STARTTLS not offered",
			Message: "mx.broken.test [127.0.0.3] does not offer STARTTLS; it said \"250 <b>hi</b> @admin [x](http://evil.example) | col\". Enable STARTTLS on the server.", Host: "mx.broken.test", IP: "127.0.0.3"}}}
	cases := []struct {
		name    string
		in      Input
		checker fakeChecker
		txt     fakeTXT
		success bool
	}{
		{"clean-addition", input(base, listBytes(t, "listed.test", "leaving.test", "new.test")), nil, proofs, true},
		{"failing-validation", input(base, listBytes(t, "listed.test", "leaving.test", "broken.test")), fakeChecker{"broken.test": bad}, proofs, false},
		{"no-proof", input(base, listBytes(t, "listed.test", "leaving.test", "unproven.test")), nil, proofs, false},
		{"other-pr", input(base, listBytes(t, "listed.test", "leaving.test", "other.test")), nil,
			fakeTXT{"_starttls-preload.other.test": {"https://github.com/example/list/pull/3"}}, false},
		{"malformed-list", input(base, []byte(`{"version": "1", "policies": {"x.test": 1}}`)), nil, proofs, false},
		{"removal-proof", input(base, listBytes(t, "listed.test")), nil, proofs, true},
		{"removal-label", input(base, listBytes(t, "listed.test"), "removal-approved"), nil, fakeTXT{}, true},
		{"removal-neither", input(base, listBytes(t, "listed.test")), nil, fakeTXT{}, false},
		{"nothing-to-check", input(base, base), nil, proofs, true},
		{"check-error", input(base, listBytes(t, "listed.test", "leaving.test", "new.test")), fakeChecker{"new.test": nil}, proofs, false},
		{"not-covered", input(base, listBytes(t, "listed.test", "leaving.test", "new.test")), fakeChecker{"new.test": passing("other.example")}, proofs, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Evaluate(t.Context(), c.in, c.checker, c.txt, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			if r.Success() != c.success {
				t.Errorf("success %v, want %v: %+v", r.Success(), c.success, r)
			}
			body := Comment(r, nil, testOpts)
			checkSafe(t, body)
			golden(t, c.name, body)
		})
	}
}

// checkSafe asserts that nothing but the marker opens an HTML tag and
// that no author-controlled text can mention or link.
func checkSafe(t *testing.T, body string) {
	t.Helper()
	if !strings.HasPrefix(body, Marker+"\n") {
		t.Errorf("comment does not start with the marker")
	}
	if n := strings.Count(body, "<"); n != 1 {
		t.Errorf("%d '<' in the comment, want only the marker's", n)
	}
	if strings.Contains(body, " @") || strings.Contains(body, "](") {
		t.Errorf("unescaped mention or link in:\n%s", body)
	}
	if len(body) > MaxComment+1000 {
		t.Errorf("comment of %d bytes", len(body))
	}
}

func TestRefusals(t *testing.T) {
	base := listBytes(t, "listed.test")
	many := make([]string, 0, 10001)
	many = append(many, "listed.test")
	for i := range 10000 {
		many = append(many, "d"+itoa(i)+".test")
	}
	huge := File{Size: 50 << 20}
	notUTF8 := bytes.Replace(listBytes(t, "listed.test"), []byte("starttls-preload"), []byte("starttls\xff"), 1)
	cases := []struct {
		name string
		in   Input
		code string
	}{
		{"too-large", Input{URL: prURL, Base: File{Data: base, Size: int64(len(base))}, Head: huge}, RefuseTooLarge},
		{"not-utf8", input(base, notUTF8), RefuseNotUTF8},
		{"too-many", input(base, listBytes(t, many...)), RefuseTooMany},
		{"deleted", Input{URL: prURL, Base: File{Data: base}, Head: File{Absent: true}}, RefuseMissing},
		{"base-broken", input([]byte("{"), base), RefuseBaseBroken},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A checker that fails the test: nothing may be checked.
			r, err := Evaluate(t.Context(), c.in, panicChecker{t}, fakeTXT{}, testOpts)
			if err != nil {
				t.Fatal(err)
			}
			if r.Refusal == nil || r.Refusal.Code != c.code || r.Success() {
				t.Fatalf("refusal %+v, want %s", r.Refusal, c.code)
			}
			body := Comment(r, nil, testOpts)
			checkSafe(t, body)
			golden(t, "refused-"+c.name, body)
		})
	}
}

type panicChecker struct{ t *testing.T }

func (p panicChecker) Check(ctx context.Context, d string) (*validate.Result, error) {
	p.t.Errorf("checked %s", d)
	return passing(d), nil
}

func itoa(i int) string {
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

func TestCommentFitsForManyFailures(t *testing.T) {
	var ds []string
	fc := fakeChecker{}
	for i := range 1000 {
		d := "d" + itoa(i) + ".test"
		ds = append(ds, d)
		r := passing(d)
		r.Eligible = false
		for range 5 {
			r.Findings = append(r.Findings, validate.Finding{Code: "cert.untrusted", Severity: validate.SeverityError, Summary: "Certificate not trusted", Message: strings.Repeat("x", 300)})
		}
		fc[d] = r
	}
	r, err := Evaluate(t.Context(), input(nil, listBytes(t, ds...)), fc, fakeTXT{}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	body := Comment(r, nil, testOpts)
	if len(body) > 65536 {
		t.Fatalf("comment of %d bytes, more than GitHub takes", len(body))
	}
	if !strings.Contains(body, "more domains do not fit") || !strings.Contains(body, "What happens next") {
		t.Errorf("truncated comment lacks its note or its ending: %.3000s", body)
	}
}

func TestAdmissionProgressGolden(t *testing.T) {
	base := listBytes(t, "listed.test")
	r, err := Evaluate(t.Context(), input(base, listBytes(t, "listed.test", "a.test", "b.test", "c.test")), fakeChecker(nil),
		fakeTXT{"_starttls-preload.a.test": {prURL}, "_starttls-preload.b.test": {prURL}, "_starttls-preload.c.test": {prURL}}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	adm := []Admission{
		{Domain: "a.test", State: "validating", Passes: 3, Needed: 28, Earliest: t0.Add(7 * 24 * time.Hour)},
		{Domain: "b.test", State: "validating", Passes: 0, Needed: 28, Failures: []validate.Finding{{Code: "cert.expired", Severity: validate.SeverityError, Summary: "Certificate expired", Message: "Renew it."}}},
		{Domain: "c.test", State: "testing", Passes: 28, Needed: 28, Serial: 42},
	}
	body := Comment(r, adm, testOpts)
	checkSafe(t, body)
	golden(t, "admission-progress", body)
}

func TestEscape(t *testing.T) {
	for _, in := range []string{
		"<script>alert(1)</script>", "@everyone", "[click](javascript:alert(1))", "a|b", "`code`", "line\nbreak\r\x00",
		"https://evil.example/x", "<!-- starttls-preload:pr-check -->", "\u202eevil",
	} {
		out := esc(in)
		for _, bad := range []string{"<", "\n", "\r", "\x00", " @", "](", "\u202e"} {
			if strings.Contains(out, bad) {
				t.Errorf("esc(%q) = %q holds %q", in, out, bad)
			}
		}
		if strings.Contains(out, "|") && !strings.Contains(out, `\|`) {
			t.Errorf("esc(%q) = %q: unescaped pipe", in, out)
		}
	}
}

func TestCheckNames(t *testing.T) {
	changes := []Change{
		{Domain: "ok.test", Kind: Added}, {Domain: "Upper.test", Kind: Added}, {Domain: "co.uk", Kind: Changed},
		{Domain: "gone.example", Kind: Removed}, {Domain: "lab.test", Kind: Added},
	}
	ps := checkNames(changes, Options{AllowTestTLD: true})
	var got []string
	for _, p := range ps {
		got = append(got, p.Code+" "+p.Path)
	}
	want := []string{`domain.invalid $.policies["Upper.test"]`, `domain.public_suffix $.policies["co.uk"]`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ps := checkNames([]Change{{Domain: "lab.test", Kind: Added}}, Options{}); len(ps) != 1 || ps[0].Code != listgen.CodeDomainUnknownTLD {
		t.Errorf(".test without AllowTestTLD: %+v", ps)
	}
}

func TestNoChecker(t *testing.T) {
	r, err := Evaluate(t.Context(), input(listBytes(t, "listed.test"), listBytes(t, "listed.test", "new.test")), nil, fakeTXT{}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if r.Success() || len(r.Domains) != 1 || r.Domains[0].CheckError == "" {
		t.Fatalf("%+v", r)
	}
}

// longName returns a distinct valid name of about 200 characters.
func longName(i int) string {
	return strings.Repeat("a", 60) + "." + strings.Repeat("b", 60) + "." + strings.Repeat("c", 60) + ".d" + itoa(i) + ".test"
}

// GitHub refuses a comment body over 65,536 characters with a 422: the
// comment must fit whatever the pull request holds (1,000 domains of
// long names, each with progress and failures to show).
func TestCommentFitsForLongNames(t *testing.T) {
	var ds []string
	var adm []Admission
	for i := range 1000 {
		d := longName(i)
		ds = append(ds, d)
		adm = append(adm, Admission{Domain: d, State: "validating", Passes: 1, Needed: 28, Earliest: t0,
			Failures: []validate.Finding{{Code: "cert.expired", Severity: validate.SeverityError, Summary: "Certificate expired", Message: strings.Repeat("y", 300)}}})
	}
	r, err := Evaluate(t.Context(), input(nil, listBytes(t, ds...)), fakeChecker(nil), fakeTXT{}, testOpts)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Domains) != 1000 {
		t.Fatalf("%d domains evaluated (problems %v, refusal %v)", len(r.Domains), r.Problems, r.Refusal)
	}
	for _, a := range [][]Admission{nil, adm} {
		body := Comment(r, a, testOpts)
		if len(body) > MaxComment {
			t.Errorf("comment of %d bytes (admissions %d), more than %d", len(body), len(a), MaxComment)
		}
		checkSafe(t, body)
		if !strings.Contains(body, "What happens next") {
			t.Errorf("comment (admissions %d) lacks its ending", len(a))
		}
	}
	// Lint problems of a long list: the problems table fits as well.
	rp := &Report{URL: prURL, HeadSHA: "0123456789abcdef0123456789abcdef01234567"}
	for i := range 1000 {
		rp.Problems = append(rp.Problems, listgen.Problem{Code: "domain.invalid", Path: `$.policies["` + longName(i) + `"]`, Message: strings.Repeat("m|", 300)})
	}
	if body := Comment(rp, nil, testOpts); len(body) > MaxComment {
		t.Errorf("problems comment of %d bytes, more than %d", len(body), MaxComment)
	}
}

// rendered approximates the text GitHub shows for escaped Markdown: the
// backslash escapes and entities resolved. GitHub finds @mentions and
// issue references in that text, after Markdown, so a backslash before
// '@' or '#' does not stop them.
func rendered(s string) string {
	s = regexp.MustCompile(`\\([[:punct:]])`).ReplaceAllString(s, "$1")
	return html.UnescapeString(s)
}

var (
	reMention   = regexp.MustCompile(`(^|[^A-Za-z0-9_])@[A-Za-z0-9]`)
	reReference = regexp.MustCompile(`(#[0-9])|((?i)\bgh-[0-9])`)
)

// TestEscapeStopsMentionsAndReferences: text from a remote server (an SMTP
// banner, a certificate name) cannot ping anyone or cross-reference an
// issue from the comment, and an e-mail address stays copyable.
func TestEscapeStopsMentionsAndReferences(t *testing.T) {
	for _, in := range []string{"@everyone", "ping @octocat now", "(@org/team)", "fixes #1", "see example/list#12", "GH-12", "gh-7"} {
		out := rendered(esc(in))
		if reMention.MatchString(out) || reReference.MatchString(out) {
			t.Errorf("esc(%q) renders as %q: a mention or a reference", in, out)
		}
	}
	for _, in := range []string{"postmaster@mx.example.net", "550 5.7.1 <a@b.example> rejected"} {
		if out := rendered(esc(in)); out != in {
			t.Errorf("esc(%q) renders as %q", in, out)
		}
	}
}
