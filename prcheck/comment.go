package prcheck

import (
	"fmt"
	"html"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/starttls-preload/starttls-preload/validate"
)

// Marker is the hidden first line of the bot's comment; the door finds its
// comment again by it and edits it in place.
const Marker = "<!-- starttls-preload:pr-check -->"

// MaxComment bounds the comment body, below GitHub's 65,536 characters.
const MaxComment = 60000

// Admission is a domain's progress in the service after the pull request
// submitted it (read from the store by the watcher).
type Admission struct {
	Domain string
	// State is the store's state name (pending, validating, testing, ...).
	State string
	// Passes of Needed passing checks; Earliest is the earliest admission
	// date (zero when unknown).
	Passes, Needed int
	Earliest       time.Time
	// Failures are the latest check's error findings, with their fixes.
	Failures []validate.Finding
	// Serial is the list serial that first carries the domain (0: not yet
	// published).
	Serial int64
}

// Comment renders the bot's comment for r, with the admission progress of
// the domains it submitted when adm is not empty. Every text that a pull
// request author or a remote server can influence is escaped.
func Comment(r *Report, adm []Admission, o Options) string {
	o = o.withDefaults()
	var b strings.Builder
	b.WriteString(Marker + "\n")
	switch {
	case r.ServiceList && r.NothingToCheck():
		b.WriteString("### starttls-preload: the service's list\n\n")
		b.WriteString("This pull request carries the list the service published (`starttls-preload publish github`): every domain in it was admitted after the service's repeated checks. Nothing to check.\n")
		return b.String()
	case r.NothingToCheck():
		b.WriteString("### starttls-preload: nothing to check\n\n")
		fmt.Fprintf(&b, "This pull request changes no domain's policy in `policy-list.json` (head %s).\n", shortSHA(r.HeadSHA))
		return b.String()
	case r.Success():
		b.WriteString("### ✅ starttls-preload: ready\n\n")
	default:
		b.WriteString("### ❌ starttls-preload: not ready\n\n")
	}
	if r.Refusal != nil {
		fmt.Fprintf(&b, "**Not checked** (`%s`): %s\n\n", codeText(r.Refusal.Code), esc(r.Refusal.Message))
		next(&b, r, adm, o)
		return b.String()
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "`policy-list.json` at %s does not lint clean, so no domain was checked. `starttls-preload list lint policy-list.json` shows the same problems.\n\n", shortSHA(r.HeadSHA))
		b.WriteString("| Code | Where | Problem |\n|---|---|---|\n")
		start := b.Len()
		for i, p := range r.Problems {
			if i == 50 || b.Len()-start > problemsBudget {
				fmt.Fprintf(&b, "| | | … and %d more |\n", len(r.Problems)-50)
				break
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", codeText(p.Code), esc(p.Path), esc(p.Message))
		}
		b.WriteString("\n")
		next(&b, r, adm, o)
		return b.String()
	}

	fmt.Fprintf(&b, "`policy-list.json` at %s: %d added, %d changed, %d removed.\n\n",
		shortSHA(r.HeadSHA), r.Count(Added), r.Count(Changed), r.Count(Removed))
	summary(&b, r)

	var tail strings.Builder
	next(&tail, r, adm, o)
	// Details, domains that need something first, while they fit.
	order := slices.Clone(r.Domains)
	slices.SortStableFunc(order, func(x, y DomainReport) int {
		switch {
		case x.OK() == y.OK():
			return 0
		case !x.OK():
			return -1
		}
		return 1
	})
	left := 0
	for i, d := range order {
		var sec strings.Builder
		details(&sec, d)
		if b.Len()+sec.Len()+tail.Len()+200 > MaxComment {
			left = len(order) - i
			break
		}
		b.WriteString(sec.String())
	}
	if left > 0 {
		fmt.Fprintf(&b, "_Details of %d more domains do not fit in one comment; fix the ones above and the check runs again._\n\n", left)
	}
	b.WriteString(tail.String())
	return b.String()
}

// maxSummaryRows bounds the summary table.
const maxSummaryRows = 300

// Budgets, in bytes, of the comment's sections that grow with the number
// of domains, so that the whole stays under MaxComment (GitHub refuses a
// longer body with 422): what does not fit is counted, not shown.
const (
	summaryBudget   = 20000
	problemsBudget  = 20000
	admissionBudget = 8000
	failuresBudget  = 8000
)

func summary(b *strings.Builder, r *Report) {
	b.WriteString("| Domain | Change | Check | Ownership proof |\n|---|---|---|---|\n")
	start := b.Len()
	for i, d := range r.Domains {
		if i == maxSummaryRows || b.Len()-start > summaryBudget {
			fmt.Fprintf(b, "| … | %d more | | |\n", len(r.Domains)-i)
			break
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", d.Domain, d.Kind, checkVerdict(d), proofVerdict(d.Proof))
	}
	b.WriteString("\n")
}

func checkVerdict(d DomainReport) string {
	switch {
	case d.Kind == Removed:
		return "— (removal)"
	case d.CheckError != "":
		return "⚠️ not checked"
	case d.Passed:
		return "✅ passes"
	}
	n := 0
	for _, f := range d.Findings {
		if f.Severity == validate.SeverityError {
			n++
		}
	}
	return fmt.Sprintf("❌ %d %s", n, plural(n, "error", "errors"))
}

func proofVerdict(p Proof) string {
	switch p.Code {
	case ProofOK:
		return "✅ TXT record names this PR"
	case ProofLabel:
		return "✅ approved by label"
	case ProofMissing:
		return "❌ no TXT record"
	case ProofOtherPR:
		return "❌ TXT names another PR"
	case ProofNotChanged:
		return "❌ TXT names a PR that does not change it"
	case ProofMismatch:
		return "❌ TXT value is not this PR"
	case ProofLookupFailed:
		return "⚠️ look-up failed"
	}
	return "—"
}

func details(b *strings.Builder, d DomainReport) {
	fmt.Fprintf(b, "#### `%s` (%s", d.Domain, d.Kind)
	if d.Policy.Mode != "" {
		fmt.Fprintf(b, ", %s", d.Policy.Mode)
	}
	if len(d.Policy.MXs) > 0 {
		b.WriteString("; MX")
		for _, m := range d.Policy.MXs {
			fmt.Fprintf(b, " `%s`", m)
		}
	}
	b.WriteString(")\n\n")
	switch {
	case d.Kind == Removed:
		b.WriteString("**Check:** a removal is not checked; it needs the ownership proof or the maintainers' label.\n\n")
	case d.CheckError != "":
		fmt.Fprintf(b, "**Check:** ⚠️ %s The check runs again on the next push or re-run.\n\n", esc(d.CheckError))
	case d.Passed:
		b.WriteString("**Check:** ✅ passes every check")
		if d.Result != nil {
			n := 0
			for _, mx := range d.Result.MXs {
				n += len(mx.Addresses)
			}
			fmt.Fprintf(b, " (%d MX %s, %d %s)", len(d.Result.MXs), plural(len(d.Result.MXs), "host", "hosts"), n, plural(n, "address", "addresses"))
		}
		b.WriteString(".\n\n")
	default:
		b.WriteString("**Check:** ❌ does not pass.\n\n")
	}
	findings(b, d.Findings, 20)
	fmt.Fprintf(b, "**Ownership proof:** %s (`%s`). %s\n\n", proofVerdict(d.Proof), codeText(d.Proof.Code), esc(d.Proof.Message))
	if !d.Proof.Proven && d.Proof.Record != "" {
		b.WriteString("Publish this record (any TTL):\n\n```text\n" + fence(d.Proof.Record) + "\n```\n\n")
	}
}

// findings writes the error and warning findings as a table (at most max).
func findings(b *strings.Builder, fs []validate.Finding, max int) {
	var shown []validate.Finding
	for _, f := range fs {
		if f.Severity == validate.SeverityError || f.Severity == validate.SeverityWarning {
			shown = append(shown, f)
		}
	}
	if len(shown) == 0 {
		return
	}
	b.WriteString("| Severity | Code | Summary | What was seen and how to fix it |\n|---|---|---|---|\n")
	for i, f := range shown {
		if i == max {
			fmt.Fprintf(b, "| | | | … and %d more |\n", len(shown)-max)
			break
		}
		fmt.Fprintf(b, "| %s | `%s` | %s | %s |\n", esc(string(f.Severity)), codeText(f.Code), esc(f.Summary), esc(f.Message))
	}
	b.WriteString("\n")
}

func next(b *strings.Builder, r *Report, adm []Admission, o Options) {
	if len(adm) > 0 {
		admission(b, adm)
	}
	b.WriteString("### What happens next\n\n")
	switch {
	case r.Refusal != nil && r.Refusal.Code == RefuseBaseBroken:
		b.WriteString("A maintainer must repair `policy-list.json` on the base branch; then push again or re-run the check.\n")
	case r.Refusal != nil || len(r.Problems) > 0:
		b.WriteString("Fix `policy-list.json` as described above and push; the check runs again on every push.\n")
	case !r.Success():
		b.WriteString("Fix what is marked ❌ above and push, or re-run the check once DNS has the records; the check runs again on every push. ")
		b.WriteString("Only domains that pass and are proven are taken further.\n")
		if r.Count(Removed) > 0 {
			fmt.Fprintf(b, "\nA removal needs the TXT record above or the maintainers' label `%s`. If you did not mean to remove a domain, update your branch from the base branch.\n", fence(o.RemovalLabel))
		}
	default:
		b.WriteString("Every changed domain passes and is proven. Each added or changed domain is now a submission: " +
			"the service checks it again and again, and admits it to the list only after it kept passing for the whole admission period, " +
			"as for the web form. This comment shows its progress. The list in git is then updated by the service's own list pull request, " +
			"so this one need not be merged.\n")
		if r.Count(Removed) > 0 {
			b.WriteString("\nRemovals take effect in the next list the service publishes.\n")
		}
	}
}

func admission(b *strings.Builder, adm []Admission) {
	b.WriteString("### Admission progress\n\n| Domain | State | Passing checks | Earliest admission | |\n|---|---|---|---|---|\n")
	start := b.Len()
	for i, a := range adm {
		if b.Len()-start > admissionBudget {
			fmt.Fprintf(b, "| … | %d more | | | |\n", len(adm)-i)
			break
		}
		earliest := "—"
		if !a.Earliest.IsZero() {
			earliest = a.Earliest.UTC().Format("2006-01-02")
		}
		note := ""
		switch {
		case a.Serial > 0:
			note = fmt.Sprintf("✅ admitted, in list serial %d", a.Serial)
		case a.State == "testing" || a.State == "enforce":
			note = "✅ admitted, in the next list"
		case len(a.Failures) > 0:
			note = fmt.Sprintf("❌ latest check failed (%d %s)", len(a.Failures), plural(len(a.Failures), "error", "errors"))
		}
		passes := fmt.Sprintf("%d of %d", a.Passes, a.Needed)
		if a.State != "validating" {
			passes = "—"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", a.Domain, esc(a.State), passes, earliest, note)
	}
	b.WriteString("\n")
	start = b.Len()
	for i, a := range adm {
		if len(a.Failures) == 0 || a.Serial > 0 {
			continue
		}
		if b.Len()-start > failuresBudget {
			n := 0
			for _, a := range adm[i:] {
				if len(a.Failures) > 0 && a.Serial == 0 {
					n++
				}
			}
			fmt.Fprintf(b, "_The latest failures of %d more %s do not fit here._\n\n", n, plural(n, "domain", "domains"))
			break
		}
		fmt.Fprintf(b, "Latest check of `%s`:\n\n", a.Domain)
		findings(b, a.Failures, 10)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func shortSHA(s string) string {
	clean := strings.Map(func(r rune) rune {
		if '0' <= r && r <= '9' || 'a' <= r && r <= 'f' {
			return r
		}
		return -1
	}, s)
	if len(clean) > 7 {
		clean = clean[:7]
	}
	if clean == "" {
		return "the head commit"
	}
	return "`" + clean + "`"
}

// maxCell bounds one escaped text.
const maxCell = 600

// Escape makes free text (a stored reason, a remote server's words) safe
// in a Markdown table cell or paragraph on GitHub, as the comment does.
func Escape(s string) string { return esc(s) }

// esc makes free text safe inside a Markdown table cell or paragraph:
// control characters and line breaks become spaces, it is cut short, HTML
// special characters become entities, and every other ASCII punctuation
// that Markdown or GitHub (mentions, links, autolinks, tables) gives a
// meaning is backslash-escaped.
func esc(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxCell {
		i := maxCell
		for i > 0 && !isRuneStart(s[i]) {
			i--
		}
		s = s[:i] + "…"
	}
	var b strings.Builder
	var prev, prev2 rune
	for _, r := range s {
		switch r {
		case '<', '>', '&', '"', '\'':
			b.WriteString(html.EscapeString(string(r)))
		case '@', '#':
			// GitHub finds @mentions and #N, OWNER/NAME#N references in
			// the rendered text, where a backslash escape is gone: a
			// zero-width space after the sign breaks them (as Renovate
			// does). An '@' after a letter or digit (an e-mail address)
			// mentions no one and stays as it is.
			b.WriteByte('\\')
			b.WriteRune(r)
			if r == '#' || !isWordRune(prev) {
				b.WriteString(zwsp)
			}
		case '-':
			b.WriteString(`\-`)
			if unicode.ToLower(prev2) == 'g' && unicode.ToLower(prev) == 'h' {
				b.WriteString(zwsp) // GH-N is an issue reference too
			}
		case '\\', '`', '*', '_', '{', '}', '[', ']', '(', ')', '+', '.', '!', '|', '~', ':', '=', '$', '%', '^':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
		prev2, prev = prev, r
	}
	return b.String()
}

// zwsp is a zero-width space, as an entity so the Markdown shows it.
const zwsp = "&#8203;"

// isWordRune is an ASCII word character: after one, '@' starts no mention.
func isWordRune(r rune) bool {
	return r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'
}

// codeText keeps what a finding or problem code may hold (lower-case
// letters, digits, '.', '_', '-'), for use inside a code span.
func codeText(s string) string {
	return strings.Map(func(r rune) rune {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return -1
	}, s)
}

// fence makes s safe inside a fenced code block: no backticks, no line
// breaks, no control characters.
func fence(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '`' || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}
