package submit

import (
	"html"
	"html/template"
	"strings"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/validate"
)

// The status page's repeated rows are written here rather than by
// html/template, which makes a reflective call per action and escaper
// (about a third of a status page's rendering went to the last findings
// and the decisions). Every value goes through html.EscapeString, which
// is safe in text and in double-quoted attributes, the only places values
// go; TestFragmentsMatchTemplates parses these and the template markup
// they replace and finds the same elements, attributes and text, hostile
// values included. The hooks are those documented in status.html.

// esc escapes s for HTML text and double-quoted attribute values.
func esc(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	}
	return html.EscapeString(s)
}

// findingItems is one li.finding per finding, as the check page's
// "finding" template writes them, with the host (and address) named.
func findingItems(fs []validate.Finding) template.HTML {
	var b strings.Builder
	for _, f := range fs {
		sev, code := esc(string(f.Severity)), esc(f.Code)
		b.WriteString(`<li class="finding sev-`)
		b.WriteString(sev)
		b.WriteString(`" data-code="`)
		b.WriteString(code)
		b.WriteString(`" data-severity="`)
		b.WriteString(sev)
		b.WriteString(`"><span class="finding-severity">`)
		b.WriteString(sev)
		b.WriteString(`</span> <span class="finding-code"><code>`)
		b.WriteString(code)
		b.WriteString(`</code></span>`)
		if f.Host != "" {
			b.WriteString(` <span class="finding-where">`)
			b.WriteString(esc(f.Host))
			if f.IP != "" {
				b.WriteString(" ")
				b.WriteString(esc(f.IP))
			}
			b.WriteString(`</span>`)
		}
		b.WriteString(` <span class="finding-summary">`)
		b.WriteString(esc(f.Summary))
		b.WriteString(`</span>`)
		if f.Message != "" {
			b.WriteString(`<p class="finding-message">`)
			b.WriteString(esc(f.Message))
			b.WriteString(`</p>`)
		}
		b.WriteString("</li>")
	}
	return template.HTML(b.String()) // every value above is escaped
}

// decisionRows is one tr.decision per decision.
func decisionRows(ds []admission.DecisionEntry) template.HTML {
	var b strings.Builder
	var at []byte
	for _, d := range ds {
		to := esc(string(d.To))
		b.WriteString(`<tr class="decision" data-to="`)
		b.WriteString(to)
		b.WriteString(`"><td class="decision-at">`)
		at = d.At.UTC().AppendFormat(at[:0], timeLayout)
		b.Write(at)
		b.WriteString(`</td><td class="decision-from">`)
		b.WriteString(esc(string(d.From)))
		b.WriteString(`</td><td class="decision-to">`)
		b.WriteString(to)
		b.WriteString(`</td><td class="decision-reason">`)
		b.WriteString(esc(d.Reason))
		b.WriteString("</td></tr>\n")
	}
	return template.HTML(b.String()) // every value above is escaped
}
