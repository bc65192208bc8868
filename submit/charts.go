package submit

import (
	"encoding/json"
	"html"
	"html/template"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/validate"
)

// The charts are drawn here as coordinates and rendered by the templates
// as inline SVG: no script, nothing drawn by the browser but the SVG.

// historyChart is the check history: one row per MX host (and one for the
// domain as a whole), one mark per check, pass or fail.
type historyChart struct {
	Width, Height int
	Left, Right   int
	AxisY         int
	Rows          []chartRow
	Marks         []chartMark
	Checks        []admission.CheckEntry
	From, To      time.Time
	// SVG is the chart drawn, every text in it escaped here (the page
	// shows hundreds of marks: built once, not through the template's
	// per-attribute escapers).
	SVG template.HTML
}

type chartRow struct {
	Label       string
	TextY, MidY int
}

type chartMark struct {
	X, Y, W, H int
	Pass       bool
	At         time.Time
	Label      string
}

const (
	chartRowH   = 22
	chartLeft   = 170
	chartWidth  = 760
	chartTop    = 6
	maxMarkW    = 14
	domainLabel = "(all MX hosts)"
)

// decodeFindings reads a check's stored findings (a JSON array of
// validate.Finding); anything else reads as none.
func decodeFindings(raw json.RawMessage) []validate.Finding {
	var fs []validate.Finding
	if len(raw) == 0 || json.Unmarshal(raw, &fs) != nil || fs == nil {
		return []validate.Finding{}
	}
	return fs
}

// newHistoryChart draws checks (newest first, as the store returns them).
// A host passes a check when it was seen and no error finding names it;
// the first row is the domain's verdict.
func newHistoryChart(checks []admission.CheckEntry) historyChart {
	c := historyChart{Checks: checks, Left: chartLeft, Width: chartWidth, Right: chartWidth - 8}
	if len(checks) == 0 {
		return c
	}
	hosts := []string{}
	for i := len(checks) - 1; i >= 0; i-- {
		for _, h := range checks[i].MXHosts {
			if !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	const maxRows = 12
	if len(hosts) > maxRows {
		hosts = hosts[len(hosts)-maxRows:]
	}
	labels := append([]string{domainLabel}, hosts...)
	for i, l := range labels {
		top := chartTop + i*chartRowH
		c.Rows = append(c.Rows, chartRow{Label: cut(l, 26), TextY: top + 15, MidY: top + chartRowH/2})
	}
	n := len(checks)
	c.Marks = make([]chartMark, 0, n*len(labels))
	span := c.Right - c.Left
	w := min(maxMarkW, max(2, span/n-1))
	step := float64(span-w) / float64(max(n-1, 1))
	for k := range n {
		ch := checks[n-1-k] // oldest first
		x := c.Left + int(float64(k)*step)
		failed := map[string]bool{}
		domainFail := !ch.Eligible
		if domainFail { // an eligible check has no error finding
			for _, f := range decodeFindings(ch.Findings) {
				if f.Severity == validate.SeverityError && f.Host != "" {
					failed[strings.ToLower(f.Host)] = true
				}
			}
		}
		for i, l := range labels {
			pass := !domainFail
			if i > 0 {
				if !slices.Contains(ch.MXHosts, l) {
					continue
				}
				pass = !failed[strings.ToLower(l)]
			}
			top := chartTop + i*chartRowH
			c.Marks = append(c.Marks, chartMark{X: x, Y: top + 4, W: w, H: chartRowH - 8, Pass: pass, At: ch.At, Label: l})
		}
	}
	c.Height = chartTop + len(labels)*chartRowH + 20
	c.AxisY = c.Height - 5
	c.From, c.To = checks[n-1].At, checks[0].At
	c.SVG = c.draw()
	return c
}

// draw writes the chart as SVG. Every text and attribute value from
// outside (host names come from DNS) goes through html.EscapeString.
func (c historyChart) draw() template.HTML {
	// A strings.Builder: its String is the SVG without a copy (a chart
	// of 100 checks is some 80 KB).
	var b strings.Builder
	b.Grow(512 + 260*len(c.Marks))
	var scratch []byte
	num := func(n int) {
		scratch = strconv.AppendInt(scratch[:0], int64(n), 10)
		b.Write(scratch)
	}
	str := func(ss ...string) {
		for _, s := range ss {
			b.WriteString(s)
		}
	}
	str(`<svg id="history-chart" class="chart" xmlns="http://www.w3.org/2000/svg" width="`)
	num(c.Width)
	str(`" height="`)
	num(c.Height)
	str(`" viewBox="0 0 `)
	num(c.Width)
	str(" ")
	num(c.Height)
	str(`" role="img" aria-label="check history: one mark per check and MX host, pass or fail">`, "\n")
	labels := make([]string, len(c.Rows))
	for i, r := range c.Rows {
		labels[i] = html.EscapeString(r.Label)
		str(`<g class="row" data-host="`, labels[i], `"><text class="label" x="4" y="`)
		num(r.TextY)
		str(`">`, labels[i], `</text><line class="rule" x1="`)
		num(c.Left)
		str(`" x2="`)
		num(c.Right)
		str(`" y1="`)
		num(r.MidY)
		str(`" y2="`)
		num(r.MidY)
		str(`"/></g>`, "\n")
	}
	escaped := map[string]string{}
	// A check's marks (one per row) follow each other and share its time:
	// its two spellings are written once per check, then copied.
	var (
		lastAt             time.Time
		rfc3339, titleTime []byte
	)
	for _, m := range c.Marks {
		class := "pass"
		if !m.Pass {
			class = "fail"
		}
		l, ok := escaped[m.Label]
		if !ok {
			l = html.EscapeString(m.Label)
			escaped[m.Label] = l
		}
		if rfc3339 == nil || !m.At.Equal(lastAt) {
			at := m.At.UTC()
			lastAt = m.At
			rfc3339 = at.AppendFormat(rfc3339[:0], time.RFC3339)
			titleTime = at.AppendFormat(titleTime[:0], timeLayout)
		}
		str(`<rect class="mark `, class, `" x="`)
		num(m.X)
		str(`" y="`)
		num(m.Y)
		str(`" width="`)
		num(m.W)
		str(`" height="`)
		num(m.H)
		str(`" data-at="`)
		b.Write(rfc3339)
		str(`" data-host="`, l, `"><title>`)
		b.Write(titleTime)
		str(" ", l, ": ", class, "</title></rect>\n")
	}
	str(`<text class="axis" x="`)
	num(c.Left)
	str(`" y="`)
	num(c.AxisY)
	str(`">`)
	scratch = c.From.UTC().AppendFormat(scratch[:0], "2006-01-02")
	b.Write(scratch)
	str(`</text><text class="axis" x="`)
	num(c.Right)
	str(`" y="`)
	num(c.AxisY)
	str(`" text-anchor="end">`)
	scratch = c.To.UTC().AppendFormat(scratch[:0], "2006-01-02")
	b.Write(scratch)
	str("</text>\n</svg>")
	return template.HTML(b.String()) // every piece above is escaped or ours
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// statsChart is the list size by mode over the published lists.
type statsChart struct {
	Width, Height         int
	Left, Right, Bottom   int
	TopLabelY, AxisY, Max int
	Points                []statsChartPoint
	TestingPoints         string
	EnforcePoints         string
	From, To              time.Time
}

type statsChartPoint struct {
	X, YTesting, YEnforce int
	Serial                int64
	At                    time.Time
	Testing, Enforce      int
}

func newStatsChart(ps []StatsPoint) statsChart {
	c := statsChart{Width: chartWidth, Height: 240, Left: 50, Right: chartWidth - 10, Bottom: 210, TopLabelY: 16, AxisY: 232}
	if len(ps) == 0 {
		return c
	}
	top := 10
	for _, p := range ps {
		c.Max = max(c.Max, p.Testing, p.Enforce)
	}
	scale := func(v int) int {
		if c.Max == 0 {
			return c.Bottom
		}
		return c.Bottom - (c.Bottom-top)*v/c.Max
	}
	step := float64(c.Right-c.Left) / float64(max(len(ps)-1, 1))
	var tp, ep []string
	for i, p := range ps {
		x := c.Left + int(float64(i)*step)
		cp := statsChartPoint{X: x, YTesting: scale(p.Testing), YEnforce: scale(p.Enforce), Serial: p.Serial, At: p.Timestamp, Testing: p.Testing, Enforce: p.Enforce}
		c.Points = append(c.Points, cp)
		tp = append(tp, strconv.Itoa(x)+","+strconv.Itoa(cp.YTesting))
		ep = append(ep, strconv.Itoa(x)+","+strconv.Itoa(cp.YEnforce))
	}
	c.TestingPoints, c.EnforcePoints = strings.Join(tp, " "), strings.Join(ep, " ")
	c.From, c.To = ps[0].Timestamp, ps[len(ps)-1].Timestamp
	return c
}
