package admission

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// good is a passing check of a domain whose MX is mx.example.test.
func good(at time.Time) Check {
	return Check{At: at, Eligible: true, MXHosts: []string{"mx.example.test"}}
}

func bad(at time.Time) Check {
	return Check{At: at, Eligible: false, MXHosts: []string{"mx.example.test"}, Codes: []string{"cert.expired"}}
}

// series returns n checks every interval from start, made by mk.
func series(start time.Time, n int, interval time.Duration, mk func(time.Time) Check) []Check {
	var out []Check
	for i := range n {
		out = append(out, mk(start.Add(time.Duration(i)*interval)))
	}
	return out
}

func cat(parts ...[]Check) []Check { return slices.Concat(parts...) }

func with(c Check, f func(*Check)) Check { f(&c); return c }

func TestEvaluate(t *testing.T) {
	rules := DefaultRules()
	dom := func(s State, since time.Time) Domain {
		return Domain{Name: "example.test", State: s, Since: since, Patterns: []string{"mx.example.test"}}
	}
	week := 7 * day
	tests := []struct {
		name      string
		d         Domain
		history   []Check
		wantState State
		wantCodes []string // decision codes
		wantNote  []string // notice codes
		wantPat   []string
	}{
		{
			name:      "validating: 29 passes over 7 days admits",
			d:         dom(Validating, t0),
			history:   series(t0, 29, 6*time.Hour, good),
			wantState: Testing, wantCodes: []string{CodeAdmitted},
		},
		{
			name:      "validating: 7 days but 27 passes is not enough",
			d:         dom(Validating, t0),
			history:   cat(series(t0, 1, 0, good), series(t0.Add(week-25*6*time.Hour), 26, 6*time.Hour, good)),
			wantState: Validating,
		},
		{
			name:      "validating: 28 passes in 6 days is not enough",
			d:         dom(Validating, t0),
			history:   series(t0, 40, 3*time.Hour, good),
			wantState: Validating,
		},
		{
			name: "validating: a failure in the window resets it",
			d:    dom(Validating, t0),
			history: cat(series(t0, 10, 6*time.Hour, good), []Check{bad(t0.Add(60 * time.Hour))},
				series(t0.Add(66*time.Hour), 19, 6*time.Hour, good)),
			wantState: Validating,
		},
		{
			name:      "validating: passes crowded into two days are not spread",
			d:         dom(Validating, t0),
			history:   cat(series(t0, 30, time.Hour, good), []Check{good(t0.Add(week))}),
			wantState: Validating,
		},
		{
			name:      "validating: checks before the state began do not count",
			d:         dom(Validating, t0.Add(day)),
			history:   series(t0, 29, 6*time.Hour, good),
			wantState: Validating,
		},
		{
			name: "validating: an MX outside the patterns is a failure",
			d:    dom(Validating, t0),
			history: cat(series(t0, 28, 6*time.Hour, good), []Check{with(good(t0.Add(week)), func(c *Check) {
				c.MXHosts = []string{"mx.other.test"}
			})}),
			wantState: Validating,
		},
		{
			name:      "validating: MTA-STS mode none is a request to leave",
			d:         dom(Validating, t0),
			history:   []Check{with(good(t0), func(c *Check) { c.MTASTS = &MTASTS{Mode: "none"} })},
			wantState: RemovalRequested, wantCodes: []string{CodeMTASTSNone},
		},
		{
			name:      "testing: one failure notifies at once and does not demote",
			d:         dom(Testing, t0),
			history:   cat(series(t0, 4, time.Hour, good), []Check{bad(t0.Add(4 * time.Hour))}),
			wantState: Testing, wantNote: []string{CodeCheckFailed},
		},
		{
			name:      "enforce: failure persisting under the grace period keeps the domain",
			d:         dom(Enforce, t0),
			history:   cat(series(t0, 2, time.Hour, good), series(t0.Add(2*time.Hour), 23, time.Hour, bad)),
			wantState: Enforce,
		},
		{
			name:      "enforce: failure persisting over the grace period demotes",
			d:         dom(Enforce, t0),
			history:   cat(series(t0, 2, time.Hour, good), series(t0.Add(2*time.Hour), 25, time.Hour, bad)),
			wantState: Demoted, wantCodes: []string{CodeFailure}, wantNote: []string{CodeFailure},
		},
		{
			name:      "enforce: a single failing check does not demote even after the grace period",
			d:         dom(Enforce, t0),
			history:   cat(series(t0, 1, 0, good), []Check{bad(t0.Add(2 * day))}),
			wantState: Enforce, wantNote: []string{CodeCheckFailed},
		},
		{
			name:      "enforce: a pass in between restarts the grace period",
			d:         dom(Enforce, t0),
			history:   cat(series(t0, 20, time.Hour, bad), []Check{good(t0.Add(20 * time.Hour))}, series(t0.Add(21*time.Hour), 5, time.Hour, bad)),
			wantState: Enforce,
		},
		{
			name: "enforce: an MX outside the patterns demotes at once",
			d:    dom(Enforce, t0),
			history: cat(series(t0, 3, time.Hour, good), []Check{with(good(t0.Add(3*time.Hour)), func(c *Check) {
				c.MXHosts = []string{"mx.example.test", "mx.newprovider.test"}
			})}),
			wantState: Demoted, wantCodes: []string{CodeMXMismatch}, wantNote: []string{CodeMXMismatch},
		},
		{
			name: "enforce: following MTA-STS updates the patterns instead of demoting",
			d: func() Domain {
				d := dom(Enforce, t0)
				d.FollowMTASTS = true
				return d
			}(),
			history: cat(series(t0, 3, time.Hour, good), []Check{with(good(t0.Add(3*time.Hour)), func(c *Check) {
				c.MXHosts = []string{"mx1.newprovider.test"}
				c.MTASTS = &MTASTS{Mode: "enforce", MX: []string{"*.newprovider.test"}}
			})}),
			wantState: Enforce, wantCodes: []string{CodeFollowMTASTS}, wantPat: []string{"*.newprovider.test"},
		},
		{
			name: "enforce: MTA-STS in testing mode is not followed",
			d: func() Domain {
				d := dom(Enforce, t0)
				d.FollowMTASTS = true
				return d
			}(),
			history: []Check{with(good(t0), func(c *Check) {
				c.MXHosts = []string{"mx1.newprovider.test"}
				c.MTASTS = &MTASTS{Mode: "testing", MX: []string{"*.newprovider.test"}}
			})},
			wantState: Demoted, wantCodes: []string{CodeMXMismatch}, wantNote: []string{CodeMXMismatch},
		},
		{
			name:      "enforce: MTA-STS mode none is a request to leave",
			d:         dom(Enforce, t0),
			history:   []Check{with(good(t0), func(c *Check) { c.MTASTS = &MTASTS{Mode: "none"} })},
			wantState: RemovalRequested, wantCodes: []string{CodeMTASTSNone},
		},
		{
			name: "testing: promotion when requested after the promotion period",
			d: func() Domain {
				d := dom(Testing, t0)
				d.WantEnforce = true
				return d
			}(),
			history:   series(t0, 7*24+1, time.Hour, good),
			wantState: Enforce, wantCodes: []string{CodePromoted},
		},
		{
			name:      "testing: no promotion unless requested",
			d:         dom(Testing, t0),
			history:   series(t0, 7*24+1, time.Hour, good),
			wantState: Testing,
		},
		{
			name: "testing: no promotion before the period",
			d: func() Domain {
				d := dom(Testing, t0)
				d.WantEnforce = true
				return d
			}(),
			history:   series(t0, 7*24, time.Hour, good),
			wantState: Testing,
		},
		{
			name: "demoted: recovers to enforce when requested after a period of passes",
			d: func() Domain {
				d := dom(Demoted, t0)
				d.WantEnforce = true
				return d
			}(),
			history:   cat([]Check{bad(t0)}, series(t0.Add(time.Hour), 7*24+1, time.Hour, good)),
			wantState: Enforce, wantCodes: []string{CodeRecovered},
		},
		{
			name:      "demoted: stays while failing",
			d:         dom(Demoted, t0),
			history:   series(t0, 10, time.Hour, bad),
			wantState: Demoted,
		},
		{
			name:      "removal requested: removed",
			d:         dom(RemovalRequested, t0),
			wantState: Removed, wantCodes: []string{CodeRemoved},
		},
		{
			name:      "pending: nothing happens",
			d:         dom(Pending, t0),
			history:   series(t0, 40, 6*time.Hour, good),
			wantState: Pending,
		},
		{
			name:      "no checks: nothing happens",
			d:         dom(Validating, t0),
			wantState: Validating,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.d.Since
			if len(tt.history) > 0 {
				now = tt.history[len(tt.history)-1].At
			}
			out := rules.Evaluate(tt.d, tt.history, now)
			if out.State != tt.wantState {
				t.Errorf("state = %s, want %s (decisions %v)", out.State, tt.wantState, out.Decisions)
			}
			var codes, notes []string
			for _, d := range out.Decisions {
				codes = append(codes, d.Code)
				if d.Reason == "" {
					t.Errorf("decision %s has no reason", d.Code)
				}
			}
			for _, n := range out.Notices {
				notes = append(notes, n.Code)
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Errorf("decisions = %v, want %v", codes, tt.wantCodes)
			}
			if !slices.Equal(notes, tt.wantNote) {
				t.Errorf("notices = %v, want %v", notes, tt.wantNote)
			}
			if !slices.Equal(out.Patterns, tt.wantPat) {
				t.Errorf("patterns = %v, want %v", out.Patterns, tt.wantPat)
			}
		})
	}
}

// TestMonth replays a month in the life of a domain through the rules,
// with the check intervals the scheduler uses: validating every 6 hours,
// listed every hour. The domain asks for enforcement, is admitted after a
// week, promoted after another, breaks its certificate for two days and is
// demoted, then recovers.
func TestMonth(t *testing.T) {
	rules := DefaultRules()
	d := Domain{Name: "example.test", State: Validating, Since: t0, Patterns: []string{"*.example.test"}, WantEnforce: true}
	broken := func(at time.Time) bool {
		return !at.Before(t0.Add(20*day)) && at.Before(t0.Add(22*day))
	}
	var history []Check
	var decisions []string
	notices := 0
	checks := 0
	for now := t0; now.Before(t0.Add(31 * day)); {
		c := Check{At: now, Eligible: !broken(now), MXHosts: []string{"mx1.example.test", "mx2.example.test"}}
		if broken(now) {
			c.Codes = []string{"cert.expired"}
		}
		checks++
		history = append(history, c)
		// Keep only the window, as the scheduler fetches it.
		for len(history) > 0 && history[0].At.Before(now.Add(-rules.Window())) {
			history = history[1:]
		}
		out := rules.Evaluate(d, history, now)
		notices += len(out.Notices)
		for _, dec := range out.Decisions {
			decisions = append(decisions, now.Sub(t0).Round(time.Hour).String()+" "+dec.Code+" "+string(dec.To))
		}
		if out.State != d.State {
			d.State, d.Since = out.State, now
		}
		if d.State.Listed() {
			now = now.Add(time.Hour)
		} else {
			now = now.Add(6 * time.Hour)
		}
	}
	want := []string{
		"168h0m0s admission.admitted testing",
		"336h0m0s promotion.enforce enforce",
		"504h0m0s demotion.failure demoted",
		"696h0m0s demotion.recovered enforce",
	}
	if !slices.Equal(decisions, want) {
		t.Errorf("decisions:\n%v\nwant:\n%v", decisions, want)
	}
	if notices != 2 {
		t.Errorf("notices = %d, want 2 (the first failure, the demotion)", notices)
	}
	t.Logf("%d checks", checks)
}

func TestMatchPattern(t *testing.T) {
	tests := []struct {
		pattern, host string
		want          bool
	}{
		{"mx.example.test", "mx.example.test", true},
		{"mx.example.test", "MX.Example.Test.", true},
		{"mx.example.test", "mx2.example.test", false},
		{"*.example.test", "mx.example.test", true},
		{"*.example.test", "a.b.example.test", false},
		{"*.example.test", "example.test", false},
		{"*.example.test", ".example.test", false},
		{"", "mx.example.test", false},
		{"mx.example.test", "", false},
	}
	for _, tt := range tests {
		if got := MatchPattern(tt.pattern, tt.host); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
	if ok, _ := MatchAll([]string{"*.example.test"}, nil); ok {
		t.Error("an empty MX set matched")
	}
	if ok, un := MatchAll([]string{"*.example.test"}, []string{"mx.example.test", "mx.other.test"}); ok || !slices.Equal(un, []string{"mx.other.test"}) {
		t.Errorf("MatchAll = %v %v", ok, un)
	}
}

func TestValidPattern(t *testing.T) {
	for _, s := range []string{"mx.example.test", "*.example.test", "MX1.Example.Test."} {
		if !ValidPattern(s) {
			t.Errorf("ValidPattern(%q) = false", s)
		}
	}
	for _, s := range []string{"", "localhost", "*.", "*.test", "a..b", "-a.test", "a b.test", "mx.*.test", "**.example.test"} {
		if ValidPattern(s) {
			t.Errorf("ValidPattern(%q) = true", s)
		}
	}
}
