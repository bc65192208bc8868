package submit

import (
	"bytes"
	"html/template"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

// The markup fragments.go replaces, as html/template wrote it.
const (
	findingTemplate  = `{{range .}}<li class="finding sev-{{.Severity}}" data-code="{{.Code}}" data-severity="{{.Severity}}"><span class="finding-severity">{{.Severity}}</span> <span class="finding-code"><code>{{.Code}}</code></span>{{if .Host}} <span class="finding-where">{{.Host}}{{if .IP}} {{.IP}}{{end}}</span>{{end}} <span class="finding-summary">{{.Summary}}</span>{{if .Message}}<p class="finding-message">{{.Message}}</p>{{end}}</li>{{end}}`
	decisionTemplate = `{{range .}}<tr class="decision" data-to="{{.To}}"><td class="decision-at">{{fmtTime .At}}</td><td class="decision-from">{{.From}}</td><td class="decision-to">{{.To}}</td><td class="decision-reason">{{.Reason}}</td></tr>
{{end}}`
)

// hostile holds text a remote server or a visitor could get into a
// finding or a reason.
var hostile = []string{
	``, `plain`, `<script>alert(1)</script>`, `" onmouseover="x`, `' onfocus='y`, `a&amp;b & c`,
	`</li><li class="finding">forged`, "tab\tnew\nline", "nul\x00byte", `+ADw-script+AD4-`, `ünïcödé 🙂`, `]]><!--`,
}

// TestFragmentsMatchTemplates: the rows fragments.go writes parse to the
// same elements, attributes and text as the template markup they replace,
// for ordinary and hostile values.
func TestFragmentsMatchTemplates(t *testing.T) {
	ft := template.Must(template.New("f").Parse(findingTemplate))
	dt := template.Must(template.New("d").Funcs(funcs).Parse(decisionTemplate))
	for i, h := range hostile {
		fs := []validate.Finding{
			{Code: "tls.expired" + h, Severity: validate.SeverityError, Summary: "Sum " + h, Message: h, Host: "mx" + h + ".test", IP: h},
			{Code: h, Severity: validate.Severity(h), Summary: h, Host: h},
			{Code: "tlsrpt.not_published", Severity: validate.SeverityInfo, Summary: "No TLS-RPT record", Message: "m " + h},
		}
		ds := []admission.DecisionEntry{
			{At: time.Date(2026, 12, 2, 10, 4, 5, 0, time.UTC), From: store.StateValidating, To: store.StateTesting, Reason: h},
			{At: time.Date(2026, 12, 3, 1, 2, 3, 0, time.FixedZone("x", 3600)), From: store.State(h), To: store.State(h + "x"), Reason: "admission.admitted"},
		}
		var want bytes.Buffer
		if err := ft.Execute(&want, fs); err != nil {
			t.Fatal(err)
		}
		same(t, i, "findings", "ul", want.String(), string(findingItems(fs)))
		want.Reset()
		if err := dt.Execute(&want, ds); err != nil {
			t.Fatal(err)
		}
		same(t, i, "decisions", "table", want.String(), string(decisionRows(ds)))
	}
	if findingItems(nil) != "" || decisionRows(nil) != "" {
		t.Error("no rows should write nothing")
	}
}

// same parses two fragments inside a parent element and compares their
// trees.
func same(t *testing.T, i int, what, parent, want, got string) {
	t.Helper()
	if w, g := tree(t, parent, want), tree(t, parent, got); w != g {
		t.Errorf("%s, value %d (%q):\n template %s\nfragments %s", what, i, hostile[i], w, g)
	}
}

// tree is a parsed fragment written out one node per line: element names
// with their attributes in order, text as its decoded value.
func tree(t *testing.T, parent, s string) string {
	t.Helper()
	ctx := &html.Node{Type: html.ElementNode, Data: "ul", DataAtom: atom.Ul}
	if parent == "table" {
		ctx = &html.Node{Type: html.ElementNode, Data: "tbody", DataAtom: atom.Tbody}
	}
	nodes, err := html.ParseFragment(strings.NewReader(s), ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	var walk func(n *html.Node, depth int)
	walk = func(n *html.Node, depth int) {
		b.WriteString(strings.Repeat(" ", depth))
		switch n.Type {
		case html.ElementNode:
			b.WriteString("<" + n.Data)
			for _, a := range n.Attr {
				b.WriteString(" " + a.Key + "=" + strings.ReplaceAll(a.Val, "\n", `\n`))
			}
			b.WriteString(">")
		case html.TextNode:
			b.WriteString("text " + strings.ReplaceAll(n.Data, "\n", `\n`))
		default:
			b.WriteString("node")
		}
		b.WriteString("\n")
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c, depth+1)
		}
	}
	for _, n := range nodes {
		walk(n, 0)
	}
	return b.String()
}
