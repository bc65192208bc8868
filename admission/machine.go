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
//	                                                               │
//	                                       (failing for RemoveAfter)└──────────▶ removed
//	any state ──(operator, or MTA-STS mode none)──▶ removal_requested ──▶ removed
//
// A demoted domain stays in the list in testing mode: senders stop
// enforcing it at once, and it returns to its earlier mode only after a
// further period of passing checks. One that keeps failing leaves the list
// after Rules.RemoveAfter, so that the list carries no stale entries; its
// contact is told, and it may be submitted again.
//
// Rules.Evaluate is a pure function of a domain (its state, declared
// patterns and a summary of its recent checks that the store keeps) and the
// check just made, with the time taken from the check: no decision needs the
// domain's history, and a month of checks replays in a test in a fraction
// of a second. Scheduler runs the rounds (claim due domains, check each
// through one validate.Round so that each MX address is contacted once,
// record checks and decisions a batch per transaction), LimitDialer keeps
// the checks polite, ListBuilder signs and archives a new list when the
// listed policies change or the current list nears its expiry, and
// NewStatusHandler serves every domain's status as JSON.
package admission

import (
	"fmt"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// State is a domain's place in its life on the list (the store's states).
type State = store.State

// The states of a domain.
const (
	Pending          = store.StatePending          // ownership not yet proven
	Validating       = store.StateValidating       // collecting passing checks
	Testing          = store.StateTesting          // listed, not enforced
	Enforce          = store.StateEnforce          // listed, enforced
	Demoted          = store.StateDemoted          // listed as testing after a failure
	RemovalRequested = store.StateRemovalRequested // leaves the next list
	Removed          = store.StateRemoved          // gone; kept for its history
)

// Listed reports whether a domain in state s appears in the list.
func Listed(s State) bool { return s == Testing || s == Enforce || s == Demoted }

// Probed reports whether domains in state s are checked in rounds.
func Probed(s State) bool { return s == Validating || Listed(s) }

// ListMode is the list's mode for a listed state: a demoted domain is
// listed as testing.
func ListMode(s State) string {
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
	CodeStale           = "removal.stale"        // demoted → removed: failing for RemoveAfter
	CodeMTASTSNone      = "removal.mta_sts_none" // → removal_requested: MTA-STS mode none
	CodeRemoved         = "removal.done"         // removal_requested → removed
	CodeRequested       = "removal.requested"    // operator asked for removal
	CodeFollowMTASTS    = "patterns.mta_sts"     // patterns replaced by the MTA-STS mx list
	CodeCheckFailed     = "notice.check_failed"  // a listed domain failed a check
	CodeOptedOut        = "schedule.opted_out"   // never probed
	CodeAddedByOperator = "admission.added"      // added by an operator

	// Ownership and the doors (package lifecycle).
	CodeReopened      = "submission.reopened"    // removal_requested/removed → pending: submitted again
	CodeWithdrawn     = "submission.withdrawn"   // pending → removed: the owner dropped the submission
	CodeOwnershipMail = "ownership.mail"         // pending → validating: the postmaster@ link confirmed (POST)
	CodeOwnershipDNS  = "ownership.dns"          // pending → validating: the _starttls-preload TXT record
	CodeOwnershipPR   = "ownership.pull_request" // → validating: a pull request's TXT record
	CodeRemovalMail   = "removal.mail"           // → removal_requested: proven by the postmaster@ link
	CodeRemovalDNS    = "removal.dns"            // → removal_requested: proven by the TXT record
	CodeRemovalPR     = "removal.pull_request"   // → removal_requested: a pull request's proof or label
)

// Rules are the admission, promotion and demotion thresholds.
type Rules struct {
	// MinDays is how long a domain must pass every check before admission.
	MinDays int
	// MinChecks is the least number of passing checks in that period; they
	// must be spread over it: no two consecutive checks more than MaxGap
	// apart.
	MinChecks int
	// MaxGap is the longest time between two checks of one passing run; a
	// longer gap starts the run again. Zero means a day.
	MaxGap time.Duration
	// PromotionPeriod is how long a listed domain that asked for
	// enforcement must keep passing before promotion (and how long a
	// demoted domain must pass before it returns).
	PromotionPeriod time.Duration
	// Grace is how long a failure of a listed domain may persist (over at
	// least two checks) before demotion.
	Grace time.Duration
	// RemoveAfter is how long a demoted domain may keep failing, without
	// a passing check, before it is removed from the list. Zero: never.
	RemoveAfter time.Duration
}

// DefaultRules are the documented defaults.
func DefaultRules() Rules {
	return Rules{MinDays: 7, MinChecks: 28, PromotionPeriod: 7 * 24 * time.Hour, Grace: 24 * time.Hour, RemoveAfter: 30 * 24 * time.Hour}
}

const day = 24 * time.Hour

// MaxGapFor is the MaxGap for checks that come every checkInterval: the
// scheduler adds up to 10 % jitter, so a gap longer than one and a half
// intervals (and than a day) means checks were missed.
func MaxGapFor(checkInterval time.Duration) time.Duration {
	return max(day, checkInterval*3/2)
}

func (r Rules) maxGap() time.Duration {
	if r.MaxGap > 0 {
		return r.MaxGap
	}
	return day
}

// Domain is what the rules need to know about a domain: its declared
// intent and a summary of its recent checks (kept by the store), so that a
// decision never needs the domain's whole history.
type Domain struct {
	Name         string
	State        State
	Patterns     []string // declared MX patterns (RFC 8461 §4.1 syntax)
	WantEnforce  bool     // promotion to enforce was requested
	FollowMTASTS bool     // patterns follow the MTA-STS mx list when its mode is enforce

	// ChecksPassed counts the passing checks since PassingSince: the
	// current run of passes in the current state (zero time: none).
	ChecksPassed int
	PassingSince time.Time
	// FailingSince is when the current run of failures began (zero: the
	// latest check passed).
	FailingSince time.Time
	// LastChecked is the time of the previous check (zero: none).
	LastChecked time.Time
}

// Check is one check of a domain, as the rules see it.
type Check struct {
	At       time.Time
	Eligible bool     // the validator found no error
	MXHosts  []string // the MX host names found
	MTASTS   *MTASTS  // nil when the domain publishes no MTA-STS policy
	Codes    []string // codes of the error findings, for the record
	// Summaries are the error findings' summaries, parallel to Codes.
	Summaries []string
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
	// Summaries are the findings' summaries, parallel to Codes.
	Summaries []string
}

// Outcome is the result of evaluating a domain after a check: its new
// state and summary, and what to record and tell.
type Outcome struct {
	State        State
	Patterns     []string // non-nil when the patterns changed
	ChecksPassed int
	PassingSince time.Time
	FailingSince time.Time
	Decisions    []Decision
	Notices      []Notice
}

// Transitioned reports whether the state changed.
func (o Outcome) Transitioned(from State) bool { return o.State != from }

func (o *Outcome) move(to State, code, format string, a ...any) {
	o.Decisions = append(o.Decisions, Decision{From: o.State, To: to, Code: code, Reason: fmt.Sprintf(format, a...)})
	o.State = to
}

func (o *Outcome) notify(d Domain, c Check, code, format string, a ...any) {
	o.Notices = append(o.Notices, Notice{Domain: d.Name, Code: code, Message: fmt.Sprintf(format, a...), At: c.At, Codes: c.Codes, Summaries: c.Summaries})
}

// Pass reports whether a check passes for a domain with the given
// patterns: the validator found no error and every MX host matches a
// pattern.
func Pass(patterns []string, c Check) bool {
	ok, _ := MatchAll(patterns, c.MXHosts)
	return c.Eligible && ok
}

// Evaluate folds check c (made at c.At, after d.LastChecked) into domain d
// and decides what follows. It is a pure function.
//
// The passing run restarts at a failure, at every change of state, and
// after a gap of more than MaxGap (a day) between checks: admission needs
// its checks spread over the whole period, and a day without checks proves
// nothing about that day.
func (r Rules) Evaluate(d Domain, c Check) Outcome {
	out := Outcome{State: d.State, ChecksPassed: d.ChecksPassed, PassingSince: d.PassingSince, FailingSince: d.FailingSince}
	switch d.State {
	case Pending, Removed:
		return out
	case RemovalRequested:
		out.move(Removed, CodeRemoved, "removal requested; not in the next list")
		return out
	}
	now := c.At

	// RFC 8461 §8.3: a policy of mode "none" is how a domain withdraws
	// from MTA-STS; the list treats it as a request to leave.
	if c.MTASTS != nil && strings.EqualFold(c.MTASTS.Mode, "none") {
		out.move(RemovalRequested, CodeMTASTSNone, "the domain publishes an MTA-STS policy in mode none")
		return out
	}

	patterns := normalizePatterns(d.Patterns)
	if d.FollowMTASTS && c.MTASTS != nil && strings.EqualFold(c.MTASTS.Mode, "enforce") &&
		len(c.MTASTS.MX) > 0 && !samePatterns(patterns, c.MTASTS.MX) {
		patterns = normalizePatterns(c.MTASTS.MX)
		out.Patterns = patterns
		out.Decisions = append(out.Decisions, Decision{From: d.State, To: d.State, Code: CodeFollowMTASTS,
			Reason: "MX patterns follow the MTA-STS policy: " + strings.Join(patterns, " ")})
	}

	pass := Pass(patterns, c)
	if pass {
		out.FailingSince = time.Time{}
		gap := d.LastChecked.IsZero() || now.Sub(d.LastChecked) > r.maxGap()
		if d.PassingSince.IsZero() || gap {
			out.PassingSince, out.ChecksPassed = now, 1
		} else {
			out.ChecksPassed++
		}
	} else {
		out.PassingSince, out.ChecksPassed = time.Time{}, 0
		if d.FailingSince.IsZero() {
			out.FailingSince = now
		}
	}
	streak := time.Duration(0)
	if pass {
		streak = now.Sub(out.PassingSince)
	}

	switch d.State {
	case Validating:
		if pass && out.ChecksPassed >= r.MinChecks && streak >= time.Duration(r.MinDays)*day {
			out.move(Testing, CodeAdmitted, "eligible on all %d checks over %s", out.ChecksPassed, roundDays(streak))
		}
	case Testing, Enforce:
		if pass {
			if d.State == Testing && d.WantEnforce && out.ChecksPassed >= 2 && streak >= r.PromotionPeriod {
				out.move(Enforce, CodePromoted, "enforcement requested; passed all %d checks over %s", out.ChecksPassed, roundDays(streak))
			}
			break
		}
		if ok, unmatched := MatchAll(patterns, c.MXHosts); !ok && len(unmatched) > 0 {
			out.move(Demoted, CodeMXMismatch, "MX %s matches no declared pattern (%s); the patterns must be declared again",
				strings.Join(unmatched, ", "), strings.Join(patterns, " "))
			out.notify(d, c, CodeMXMismatch, "%s was demoted to testing: %s", d.Name, out.Decisions[len(out.Decisions)-1].Reason)
			break
		}
		if d.FailingSince.IsZero() {
			out.notify(d, c, CodeCheckFailed, "%s failed a check (%s); it is demoted if the failure persists for %s",
				d.Name, codesOrUnknown(c.Codes), r.Grace)
			break
		}
		// At least two failing checks: the one at FailingSince and this one.
		if now.Sub(d.FailingSince) >= r.Grace {
			out.move(Demoted, CodeFailure, "failing since %s (%s)", d.FailingSince.UTC().Format(time.RFC3339), codesOrUnknown(c.Codes))
			out.notify(d, c, CodeFailure, "%s was demoted to testing: %s", d.Name, out.Decisions[len(out.Decisions)-1].Reason)
		}
	case Demoted:
		if pass && out.ChecksPassed >= 2 && streak >= r.PromotionPeriod {
			to := Testing
			if d.WantEnforce {
				to = Enforce
			}
			out.move(to, CodeRecovered, "passed all %d checks over %s since the failure", out.ChecksPassed, roundDays(streak))
		}
		if !pass && r.RemoveAfter > 0 && now.Sub(out.FailingSince) >= r.RemoveAfter {
			out.move(Removed, CodeStale, "failing since %s (%s), more than %s", out.FailingSince.UTC().Format(time.RFC3339),
				codesOrUnknown(c.Codes), roundDays(r.RemoveAfter))
			out.notify(d, c, CodeStale, "%s was removed from the list: %s; submit it again once it passes", d.Name,
				out.Decisions[len(out.Decisions)-1].Reason)
		}
	}
	if out.State != d.State && pass {
		// A new state starts a new run of passes.
		out.PassingSince, out.ChecksPassed = now, 1
	}
	return out
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
