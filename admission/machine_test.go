package admission

import (
	"errors"
	"slices"
	"strings"
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

// replay feeds checks to the rules one by one, as the scheduler does, and
// returns the domain afterwards with every decision and notice code.
func replay(rules Rules, d Domain, checks []Check) (Domain, []string, []string) {
	var codes, notes []string
	for _, c := range checks {
		out := rules.Evaluate(d, c)
		for _, dec := range out.Decisions {
			codes = append(codes, dec.Code)
		}
		for _, n := range out.Notices {
			notes = append(notes, n.Code)
		}
		d.State = out.State
		if out.Patterns != nil {
			d.Patterns = out.Patterns
		}
		d.ChecksPassed, d.PassingSince, d.FailingSince = out.ChecksPassed, out.PassingSince, out.FailingSince
		d.LastChecked = c.At
	}
	return d, codes, notes
}

func TestEvaluate(t *testing.T) {
	rules := DefaultRules()
	dom := func(s State) Domain {
		return Domain{Name: "example.test", State: s, Patterns: []string{"mx.example.test"}}
	}
	wantEnforce := func(d Domain) Domain { d.WantEnforce = true; return d }
	follow := func(d Domain) Domain { d.FollowMTASTS = true; return d }
	week := 7 * day
	tests := []struct {
		name      string
		d         Domain
		checks    []Check
		wantState State
		wantCodes []string // decision codes
		wantNote  []string // notice codes
		wantPat   []string
		rules     func(Rules) Rules // adjusts the default rules
	}{
		{
			name:      "validating: 29 passes over 7 days admits",
			d:         dom(Validating),
			checks:    series(t0, 29, 6*time.Hour, good),
			wantState: Testing, wantCodes: []string{CodeAdmitted},
		},
		{
			name:      "validating: 7 days but 27 passes is not enough",
			d:         dom(Validating),
			checks:    cat(series(t0, 1, 0, good), series(t0.Add(week-25*6*time.Hour), 26, 6*time.Hour, good)),
			wantState: Validating,
		},
		{
			name:      "validating: 28 passes in 6 days is not enough",
			d:         dom(Validating),
			checks:    series(t0, 48, 3*time.Hour, good),
			wantState: Validating,
		},
		{
			name: "validating: a failure in the period starts it again",
			d:    dom(Validating),
			checks: cat(series(t0, 10, 6*time.Hour, good), []Check{bad(t0.Add(60 * time.Hour))},
				series(t0.Add(66*time.Hour), 28, 6*time.Hour, good)),
			wantState: Validating,
		},
		{
			name:      "validating: a day without checks starts the period again",
			d:         dom(Validating),
			checks:    cat(series(t0, 30, time.Hour, good), series(t0.Add(3*day), 20, 6*time.Hour, good)),
			wantState: Validating,
		},
		{
			name: "validating: with MaxGap, daily checks a little late still count",
			d:    dom(Validating),
			checks: func() []Check {
				var cs []Check
				for i := range 8 {
					cs = append(cs, good(t0.Add(time.Duration(i)*26*time.Hour)))
				}
				return cs
			}(),
			rules:     func(r Rules) Rules { r.MinChecks, r.MaxGap = 7, 36*time.Hour; return r },
			wantState: Testing, wantCodes: []string{CodeAdmitted},
		},
		{
			name:      "validating: without MaxGap, the same checks never add up",
			d:         dom(Validating),
			checks:    series(t0, 8, 26*time.Hour, good),
			rules:     func(r Rules) Rules { r.MinChecks = 7; return r },
			wantState: Validating,
		},
		{
			name: "validating: an MX outside the patterns is a failure",
			d:    dom(Validating),
			checks: cat(series(t0, 28, 6*time.Hour, good), []Check{with(good(t0.Add(week)), func(c *Check) {
				c.MXHosts = []string{"mx.other.test"}
			})}),
			wantState: Validating,
		},
		{
			name:      "validating: no MX host is a failure",
			d:         dom(Validating),
			checks:    cat(series(t0, 28, 6*time.Hour, good), []Check{with(good(t0.Add(week)), func(c *Check) { c.MXHosts = nil })}),
			wantState: Validating,
		},
		{
			name:      "validating: MTA-STS mode none is a request to leave",
			d:         dom(Validating),
			checks:    []Check{with(good(t0), func(c *Check) { c.MTASTS = &MTASTS{Mode: "none"} })},
			wantState: RemovalRequested, wantCodes: []string{CodeMTASTSNone},
		},
		{
			name:      "testing: one failure notifies at once and does not demote",
			d:         dom(Testing),
			checks:    cat(series(t0, 4, time.Hour, good), []Check{bad(t0.Add(4 * time.Hour))}),
			wantState: Testing, wantNote: []string{CodeCheckFailed},
		},
		{
			name:      "enforce: failure persisting under the grace period keeps the domain",
			d:         dom(Enforce),
			checks:    cat(series(t0, 2, time.Hour, good), series(t0.Add(2*time.Hour), 24, time.Hour, bad)),
			wantState: Enforce, wantNote: []string{CodeCheckFailed},
		},
		{
			name:      "enforce: failure persisting over the grace period demotes",
			d:         dom(Enforce),
			checks:    cat(series(t0, 2, time.Hour, good), series(t0.Add(2*time.Hour), 25, time.Hour, bad)),
			wantState: Demoted, wantCodes: []string{CodeFailure}, wantNote: []string{CodeCheckFailed, CodeFailure},
		},
		{
			name:      "enforce: a single failing check does not demote even after the grace period",
			d:         dom(Enforce),
			checks:    cat(series(t0, 1, 0, good), []Check{bad(t0.Add(2 * day))}),
			wantState: Enforce, wantNote: []string{CodeCheckFailed},
		},
		{
			name:      "enforce: a pass in between restarts the grace period",
			d:         dom(Enforce),
			checks:    cat(series(t0, 20, time.Hour, bad), []Check{good(t0.Add(20 * time.Hour))}, series(t0.Add(21*time.Hour), 5, time.Hour, bad)),
			wantState: Enforce, wantNote: []string{CodeCheckFailed, CodeCheckFailed},
		},
		{
			name: "enforce: an MX outside the patterns demotes at once",
			d:    dom(Enforce),
			checks: cat(series(t0, 3, time.Hour, good), []Check{with(good(t0.Add(3*time.Hour)), func(c *Check) {
				c.MXHosts = []string{"mx.example.test", "mx.newprovider.test"}
			})}),
			wantState: Demoted, wantCodes: []string{CodeMXMismatch}, wantNote: []string{CodeMXMismatch},
		},
		{
			name: "enforce: following MTA-STS updates the patterns instead of demoting",
			d:    follow(dom(Enforce)),
			checks: cat(series(t0, 3, time.Hour, good), []Check{with(good(t0.Add(3*time.Hour)), func(c *Check) {
				c.MXHosts = []string{"mx1.newprovider.test"}
				c.MTASTS = &MTASTS{Mode: "enforce", MX: []string{"*.newprovider.test"}}
			})}),
			wantState: Enforce, wantCodes: []string{CodeFollowMTASTS}, wantPat: []string{"*.newprovider.test"},
		},
		{
			name: "enforce: MTA-STS in testing mode is not followed",
			d:    follow(dom(Enforce)),
			checks: []Check{with(good(t0), func(c *Check) {
				c.MXHosts = []string{"mx1.newprovider.test"}
				c.MTASTS = &MTASTS{Mode: "testing", MX: []string{"*.newprovider.test"}}
			})},
			wantState: Demoted, wantCodes: []string{CodeMXMismatch}, wantNote: []string{CodeMXMismatch},
		},
		{
			name:      "enforce: MTA-STS mode none is a request to leave",
			d:         dom(Enforce),
			checks:    []Check{with(good(t0), func(c *Check) { c.MTASTS = &MTASTS{Mode: "none"} })},
			wantState: RemovalRequested, wantCodes: []string{CodeMTASTSNone},
		},
		{
			name:      "testing: promotion when requested after the promotion period",
			d:         wantEnforce(dom(Testing)),
			checks:    series(t0, 7*24+1, time.Hour, good),
			wantState: Enforce, wantCodes: []string{CodePromoted},
		},
		{
			name:      "testing: no promotion unless requested",
			d:         dom(Testing),
			checks:    series(t0, 7*24+1, time.Hour, good),
			wantState: Testing,
		},
		{
			name:      "testing: no promotion before the period",
			d:         wantEnforce(dom(Testing)),
			checks:    series(t0, 7*24, time.Hour, good),
			wantState: Testing,
		},
		{
			name:      "demoted: recovers to enforce when requested after a period of passes",
			d:         wantEnforce(dom(Demoted)),
			checks:    cat([]Check{bad(t0)}, series(t0.Add(time.Hour), 7*24+1, time.Hour, good)),
			wantState: Enforce, wantCodes: []string{CodeRecovered},
		},
		{
			name:      "demoted: stays while failing",
			d:         dom(Demoted),
			checks:    series(t0, 10, time.Hour, bad),
			wantState: Demoted,
		},
		{
			name:      "demoted: removed after failing for 30 days",
			d:         dom(Demoted),
			checks:    series(t0, 30*24+1, time.Hour, bad),
			wantState: Removed, wantCodes: []string{CodeStale}, wantNote: []string{CodeStale},
		},
		{
			name:      "demoted: not removed before 30 days of failure",
			d:         dom(Demoted),
			checks:    series(t0, 30*24, time.Hour, bad),
			wantState: Demoted,
		},
		{
			name:      "demoted: one pass starts the 30 days again",
			d:         dom(Demoted),
			checks:    cat(series(t0, 20*24, time.Hour, bad), []Check{good(t0.Add(20 * day))}, series(t0.Add(20*day+time.Hour), 20*24, time.Hour, bad)),
			wantState: Demoted,
		},
		{
			name:      "demoted: never removed when RemoveAfter is zero",
			d:         dom(Demoted),
			checks:    series(t0, 40*24, time.Hour, bad),
			wantState: Demoted,
			rules:     func(r Rules) Rules { r.RemoveAfter = 0; return r },
		},
		{
			name:      "listed: the failure that demotes counts towards removal",
			d:         dom(Enforce),
			checks:    series(t0, 30*24+1, time.Hour, bad),
			wantState: Removed, wantCodes: []string{CodeFailure, CodeStale}, wantNote: []string{CodeCheckFailed, CodeFailure, CodeStale},
		},
		{
			name:      "removal requested: removed",
			d:         dom(RemovalRequested),
			checks:    []Check{{At: t0}},
			wantState: Removed, wantCodes: []string{CodeRemoved},
		},
		{
			name:      "pending: nothing happens",
			d:         dom(Pending),
			checks:    series(t0, 40, 6*time.Hour, good),
			wantState: Pending,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rules
			if tt.rules != nil {
				r = tt.rules(r)
			}
			got, codes, notes := replay(r, tt.d, tt.checks)
			if got.State != tt.wantState {
				t.Errorf("state = %s, want %s (decisions %v)", got.State, tt.wantState, codes)
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Errorf("decisions = %v, want %v", codes, tt.wantCodes)
			}
			if !slices.Equal(notes, tt.wantNote) {
				t.Errorf("notices = %v, want %v", notes, tt.wantNote)
			}
			if tt.wantPat != nil && !slices.Equal(got.Patterns, tt.wantPat) {
				t.Errorf("patterns = %v, want %v", got.Patterns, tt.wantPat)
			}
		})
	}
}

func TestDecisionsHaveReasons(t *testing.T) {
	out := DefaultRules().Evaluate(Domain{Name: "example.test", State: Enforce, Patterns: []string{"mx.example.test"}},
		with(good(t0), func(c *Check) { c.MXHosts = []string{"mx.elsewhere.test"} }))
	if len(out.Decisions) != 1 || !strings.Contains(out.Decisions[0].String(), "mx.elsewhere.test") {
		t.Errorf("decisions = %v, want one naming the stray MX", out.Decisions)
	}
	if len(out.Notices) != 1 || out.Notices[0].Domain != "example.test" || out.Notices[0].Message == "" {
		t.Errorf("notices = %+v", out.Notices)
	}
}

// TestMonth replays a month in the life of a domain through the rules,
// with the check intervals the scheduler uses: validating every 6 hours,
// listed every hour. The domain asks for enforcement, is admitted after a
// week, promoted after another, breaks its certificate for two days and is
// demoted, then recovers.
func TestMonth(t *testing.T) {
	rules := DefaultRules()
	d := Domain{Name: "example.test", State: Validating, Patterns: []string{"*.example.test"}, WantEnforce: true}
	broken := func(at time.Time) bool {
		return !at.Before(t0.Add(20*day)) && at.Before(t0.Add(22*day))
	}
	var decisions []string
	notices := 0
	checks := 0
	for now := t0; now.Before(t0.Add(31 * day)); {
		c := Check{At: now, Eligible: !broken(now), MXHosts: []string{"mx1.example.test", "mx2.example.test"}}
		if broken(now) {
			c.Codes = []string{"cert.expired"}
		}
		checks++
		var codes, notes []string
		d, codes, notes = replay(rules, d, []Check{c})
		notices += len(notes)
		for _, code := range codes {
			decisions = append(decisions, now.Sub(t0).Round(time.Hour).String()+" "+code+" "+string(d.State))
		}
		if Listed(d.State) {
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

func TestNormalizePatterns(t *testing.T) {
	got, err := NormalizePatterns([]string{"MX1.Example.Test.", ".example.net", "*.example.org", "mx1.example.test"})
	if want := []string{"mx1.example.test", "*.example.net", "*.example.org"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("NormalizePatterns = %v, %v; want %v", got, err, want)
	}
	for _, s := range []string{"", "mx.*.test", "**.example.test", "a b.test"} {
		if _, err := NormalizePatterns([]string{s}); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizePatterns(%q) err = %v, want ErrInvalid", s, err)
		}
	}
}

func TestMaxGapFor(t *testing.T) {
	for _, tt := range []struct{ interval, want time.Duration }{
		{time.Second, 24 * time.Hour},
		{6 * time.Hour, 24 * time.Hour},
		{24 * time.Hour, 36 * time.Hour},
		{48 * time.Hour, 72 * time.Hour},
	} {
		if got := MaxGapFor(tt.interval); got != tt.want {
			t.Errorf("MaxGapFor(%v) = %v, want %v", tt.interval, got, tt.want)
		}
	}
}
