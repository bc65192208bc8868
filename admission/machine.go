// Package admission decides, from a domain's repeated checks, when it enters
// the STARTTLS preload list, when it is promoted to enforcement, and when it
// is demoted or removed; it runs the rounds of checks that feed those
// decisions and builds the signed list from the result.
//
// The life of a domain:
//
//	pending ──(ownership proven)──▶ validating ──(admission)──▶ testing ──(promotion)──▶ enforce
//	                                                              │  ▲                       │
//	                                                   (failure)  ▼  │ (recovery)            │
//	                                                            demoted ◀─────(failure)──────┘
//	any state ──(operator, or MTA-STS mode none)──▶ removal_requested ──▶ removed
//
// A demoted domain stays in the list in testing mode: senders stop
// enforcing it at once, and it returns to its earlier mode only after a
// further period of passing checks. The decisions are pure functions of the
// domain, its recent checks and the time (Rules.Evaluate), so a month of
// checks can be replayed in a test in a fraction of a second.
package admission

import (
	"fmt"
	"strings"
	"time"
)

// State is a domain's place in its life on the list.
type State string

// The states of a domain.
const (
	Pending          State = "pending"           // ownership not yet proven
	Validating       State = "validating"        // collecting passing checks
	Testing          State = "testing"           // listed, not enforced
	Enforce          State = "enforce"           // listed, enforced
	Demoted          State = "demoted"           // listed as testing after a failure
	RemovalRequested State = "removal_requested" // leaves the next list
	Removed          State = "removed"           // gone; kept for its history
)

// Listed reports whether a domain in state s appears in the list.
func (s State) Listed() bool { return s == Testing || s == Enforce || s == Demoted }

// Checked reports whether domains in state s are checked in rounds.
func (s State) Checked() bool { return s == Validating || s.Listed() }

// ListMode is the list's mode for a listed state: a demoted domain is
// listed as testing.
func (s State) ListMode() string {
	if s == Enforce {
		return "enforce"
	}
	return "testing"
}

// Reason codes of decisions and notices. A code never changes meaning.
const (
	CodeAdmitted        = "admission.admitted"   // validating → testing
	CodePromoted        = "promotion.enforce"    // testing → enforce
	CodeFailure         = "demotion.failure"     // listed → demoted: failure persisted over the grace period
	CodeMXMismatch      = "demotion.mx_mismatch" // listed → demoted: an MX outside the declared patterns
	CodeRecovered       = "demotion.recovered"   // demoted → testing/enforce
	CodeMTASTSNone      = "removal.mta_sts_none" // → removal_requested: MTA-STS mode none
	CodeRemoved         = "removal.done"         // removal_requested → removed
	CodeRequested       = "removal.requested"    // operator asked for removal
	CodeFollowMTASTS    = "patterns.mta_sts"     // patterns replaced by the MTA-STS mx list
	CodeCheckFailed     = "notice.check_failed"  // a listed domain failed a check
	CodeOptedOut        = "schedule.opted_out"   // never probed
	CodeAddedByOperator = "admission.added"      // added by an operator
)

// Rules are the admission, promotion and demotion thresholds.
type Rules struct {
	// MinDays is how long a domain must pass every check before admission.
	MinDays int
	// MinChecks is the least number of passing checks in that period; they
	// must be spread over it: every day of the period holds at least one.
	MinChecks int
	// PromotionPeriod is how long a listed domain that asked for
	// enforcement must keep passing before promotion (and how long a
	// demoted domain must pass before it returns).
	PromotionPeriod time.Duration
	// Grace is how long a failure of a listed domain may persist (over at
	// least two checks) before demotion.
	Grace time.Duration
}

// DefaultRules are the documented defaults.
func DefaultRules() Rules {
	return Rules{MinDays: 7, MinChecks: 28, PromotionPeriod: 7 * 24 * time.Hour, Grace: 24 * time.Hour}
}

const day = 24 * time.Hour

// Window is how far back Evaluate needs a domain's checks.
func (r Rules) Window() time.Duration {
	w := time.Duration(r.MinDays)*day + day
	w = max(w, r.PromotionPeriod+day, 2*r.Grace+day)
	return w
}

// Domain is what the rules need to know about a domain.
type Domain struct {
	Name         string
	State        State
	Since        time.Time // when the domain entered State
	Patterns     []string  // declared MX patterns (RFC 8461 §4.1 syntax)
	WantEnforce  bool      // promotion to enforce was requested
	FollowMTASTS bool      // patterns follow the MTA-STS mx list when its mode is enforce
}

// Check is one check of a domain, as the rules see it.
type Check struct {
	At       time.Time
	Eligible bool     // the validator found no error
	MXHosts  []string // the MX host names found
	MTASTS   *MTASTS  // nil when the domain publishes no MTA-STS policy
	Codes    []string // codes of the error findings, for the record
}

// MTASTS is the part of a domain's MTA-STS policy the rules use.
type MTASTS struct {
	Mode string // enforce, testing or none
	MX   []string
}

// Decision is one recorded decision: a state change, or (From == To) a
// change of the domain's patterns.
type Decision struct {
	From, To State
	Code     string
	Reason   string
}

// String renders a decision as stored: "code: reason".
func (d Decision) String() string { return d.Code + ": " + d.Reason }

// Notice tells a domain's contact about a failure.
type Notice struct {
	Domain  string
	Code    string
	Message string
	At      time.Time
	Codes   []string // the failing check's finding codes
}

// Outcome is the result of evaluating a domain after a check.
type Outcome struct {
	State     State
	Patterns  []string // non-nil when the patterns changed
	Decisions []Decision
	Notices   []Notice
}

// Changed reports whether anything must be recorded.
func (o Outcome) Changed() bool { return len(o.Decisions) > 0 }

func (o *Outcome) move(to State, code, format string, a ...any) {
	o.Decisions = append(o.Decisions, Decision{From: o.State, To: to, Code: code, Reason: fmt.Sprintf(format, a...)})
	o.State = to
}

func (o *Outcome) notify(d Domain, c Check, code, format string, a ...any) {
	o.Notices = append(o.Notices, Notice{Domain: d.Name, Code: code, Message: fmt.Sprintf(format, a...), At: c.At, Codes: c.Codes})
}

// Evaluate decides what follows for domain d given its checks (oldest
// first, covering at least Window before now; the last one is the check
// just made) at time now. It is a pure function.
func (r Rules) Evaluate(d Domain, history []Check, now time.Time) Outcome {
	out := Outcome{State: d.State}
	switch d.State {
	case Pending, Removed:
		return out
	case RemovalRequested:
		out.move(Removed, CodeRemoved, "removal requested; not in the next list")
		return out
	}
	if len(history) == 0 {
		return out
	}
	latest := history[len(history)-1]

	// RFC 8461 §8.3: a policy of mode "none" is how a domain withdraws
	// from MTA-STS; the list treats it as a request to leave.
	if latest.MTASTS != nil && strings.EqualFold(latest.MTASTS.Mode, "none") {
		out.move(RemovalRequested, CodeMTASTSNone, "the domain publishes an MTA-STS policy in mode none")
		return out
	}

	patterns := normalizePatterns(d.Patterns)
	if d.FollowMTASTS && latest.MTASTS != nil && strings.EqualFold(latest.MTASTS.Mode, "enforce") &&
		len(latest.MTASTS.MX) > 0 && !samePatterns(patterns, latest.MTASTS.MX) {
		patterns = normalizePatterns(latest.MTASTS.MX)
		out.Patterns = patterns
		out.Decisions = append(out.Decisions, Decision{From: d.State, To: d.State, Code: CodeFollowMTASTS,
			Reason: "MX patterns follow the MTA-STS policy: " + strings.Join(patterns, " ")})
	}
	pass := func(c Check) bool {
		ok, _ := MatchAll(patterns, c.MXHosts)
		return c.Eligible && ok
	}
	// The passing streak: checks since the domain entered its state and
	// after its last failure.
	first, passes := -1, 0
	for i, c := range history {
		if c.At.Before(d.Since) {
			continue
		}
		if pass(c) {
			if first < 0 {
				first = i
			}
			passes++
		} else {
			first, passes = -1, 0
		}
	}
	streak := time.Duration(0)
	if first >= 0 {
		streak = now.Sub(history[first].At)
	}

	switch d.State {
	case Validating:
		need := time.Duration(r.MinDays) * day
		if passes >= r.MinChecks && streak >= need && r.spread(history[max(first, 0):], now, pass) {
			out.move(Testing, CodeAdmitted, "eligible on all %d checks over %s", passes, roundDays(streak))
		}
	case Testing, Enforce:
		if pass(latest) {
			if d.State == Testing && d.WantEnforce && passes >= 2 && streak >= r.PromotionPeriod {
				out.move(Enforce, CodePromoted, "enforcement requested; passed all %d checks over %s", passes, roundDays(streak))
			}
			return out
		}
		if ok, unmatched := MatchAll(patterns, latest.MXHosts); !ok && len(unmatched) > 0 {
			out.move(Demoted, CodeMXMismatch, "MX %s matches no declared pattern (%s); the patterns must be declared again",
				strings.Join(unmatched, ", "), strings.Join(patterns, " "))
			out.notify(d, latest, CodeMXMismatch, "%s was demoted to testing: %s", d.Name, out.Decisions[len(out.Decisions)-1].Reason)
			return out
		}
		// The failing streak: consecutive failures ending with this check.
		n := 0
		for i := len(history) - 1; i >= 0 && !pass(history[i]); i-- {
			n++
		}
		since := history[len(history)-n].At
		if n == 1 {
			out.notify(d, latest, CodeCheckFailed, "%s failed a check (%s); it is demoted if the failure persists for %s",
				d.Name, codesOrUnknown(latest.Codes), r.Grace)
		}
		if n >= 2 && now.Sub(since) >= r.Grace {
			out.move(Demoted, CodeFailure, "failed %d checks in a row since %s (%s)", n, since.UTC().Format(time.RFC3339), codesOrUnknown(latest.Codes))
			out.notify(d, latest, CodeFailure, "%s was demoted to testing: %s", d.Name, out.Decisions[len(out.Decisions)-1].Reason)
		}
	case Demoted:
		if pass(latest) && passes >= 2 && streak >= r.PromotionPeriod {
			to := Testing
			if d.WantEnforce {
				to = Enforce
			}
			out.move(to, CodeRecovered, "passed all %d checks over %s since the demotion", passes, roundDays(streak))
		}
	}
	return out
}

// spread reports whether every day of the admission period, counted back
// from now, holds at least one passing check.
func (r Rules) spread(checks []Check, now time.Time, pass func(Check) bool) bool {
	if r.MinDays <= 0 {
		return true
	}
	covered := make([]bool, r.MinDays)
	for _, c := range checks {
		if !pass(c) {
			continue
		}
		age := now.Sub(c.At)
		if age < 0 {
			continue
		}
		if i := int(age / day); i < r.MinDays {
			covered[i] = true
		}
	}
	for _, ok := range covered {
		if !ok {
			return false
		}
	}
	return true
}

func roundDays(d time.Duration) string {
	if d >= day {
		return fmt.Sprintf("%.1f days", d.Hours()/24)
	}
	return d.Round(time.Minute).String()
}

func codesOrUnknown(codes []string) string {
	if len(codes) == 0 {
		return "no finding recorded"
	}
	return strings.Join(codes, ", ")
}
