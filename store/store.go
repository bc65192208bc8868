// Package store keeps the life of every domain on the preload list: its
// state, declared MX patterns, check history (time and findings per check),
// the decisions taken and why, its ownership proofs (only the SHA-256 of a
// mailed token; see Proof), list serials, and the opt-out list.
//
// Store is the one interface; store/memstore (in memory, for tests),
// store/sqlite (the default, a file under the data directory) and
// store/postgres (several machines sharing the work) implement it, and all of
// them pass the one conformance suite in store/storetest. store/backend opens
// the configured one.
//
// Every write that belongs together happens in one transaction: a check, the
// counters it changes, the next check time and a state transition with its
// decision are written together or not at all (RecordCheck), so a process
// killed at any moment leaves no half-applied transition. State changes are
// compare-and-set on the expected current state (ErrConflict otherwise), so
// no transition is lost when several workers or an operator act at once.
//
// Times are kept with microsecond precision and returned in UTC. The store
// never reads the wall clock for decisions: callers pass the time (an
// injected clock), so tests can run a month of checks in a second.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// Sentinel errors, matched with errors.Is.
var (
	ErrNotFound      = errors.New("store: not found")
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrConflict: the domain's state was not the expected one (someone
	// else changed it first), or the worker's claim was taken over after its
	// lease expired. Nothing was written; re-read and decide again.
	ErrConflict = errors.New("store: conflict")
	// ErrInvalid: the caller passed a value the store refuses (unknown
	// state, empty name).
	ErrInvalid = errors.New("store: invalid value")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
)

// State is where a domain is in its life on the list.
type State string

// The states. pending → validating → testing → enforce; any listed state →
// demoted on failure; removal_requested → removed.
const (
	StatePending          State = "pending"           // ownership not yet proven
	StateValidating       State = "validating"        // collecting passes before admission
	StateTesting          State = "testing"           // listed, not enforced
	StateEnforce          State = "enforce"           // listed, enforced
	StateDemoted          State = "demoted"           // was listed, failed; listed in testing mode
	StateRemovalRequested State = "removal_requested" // the owner asked to leave
	StateRemoved          State = "removed"           // gone from the list; history kept
)

// States lists every state in life order.
var States = []State{StatePending, StateValidating, StateTesting, StateEnforce, StateDemoted, StateRemovalRequested, StateRemoved}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, k := range States {
		if s == k {
			return true
		}
	}
	return false
}

// ValidName reports whether name is a domain name as the store keeps it:
// not empty, at most 253 characters, lower-case, without a trailing dot or
// white space. Callers normalise names before they reach the store, so that
// "Example.COM." and "example.com" are one domain.
func ValidName(name string) bool {
	if name == "" || len(name) > 253 || strings.HasSuffix(name, ".") {
		return false
	}
	for _, r := range name {
		if 'A' <= r && r <= 'Z' || r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Domain is one domain's row.
type Domain struct {
	Name       string   // lower-case, no trailing dot
	State      State    //
	Contact    string   // where failures are notified (e-mail address)
	MXPatterns []string // declared MX patterns ("mx1.example.com", ".example.net"); never nil on read
	// WantEnforce: the owner asked for promotion to enforce.
	WantEnforce bool
	// FollowMTASTS: the patterns follow the domain's MTA-STS "mx" list.
	FollowMTASTS bool
	// Source is the door of the latest declaration: "web", "operator", or
	// a pull request's URL.
	Source string

	CreatedAt time.Time
	UpdatedAt time.Time
	// NextCheck is when the domain is next due; ClaimDue hands out
	// domains whose NextCheck is not after "now".
	NextCheck time.Time
	// LastChecked is the time of the latest recorded check, nil if none.
	LastChecked *time.Time
	// ChecksPassed counts the passes of the current streak (or window);
	// PassingSince is when that streak began (nil: no streak).
	ChecksPassed int
	PassingSince *time.Time
	// FailingSince is when the current run of failures began (nil: the
	// latest check passed).
	FailingSince *time.Time

	// ClaimedBy and ClaimedUntil show the worker holding the domain's
	// check and when its lease expires (read-only; set by ClaimDue,
	// cleared by RecordCheck and Release).
	ClaimedBy    string
	ClaimedUntil *time.Time
}

// CheckRecord is one check of one domain, kept as history.
type CheckRecord struct {
	ID       int64 // assigned by the store
	Domain   string
	At       time.Time
	Eligible bool
	MXHosts  []string // the MX hosts seen; never nil on read
	// Findings is the checker's result as JSON (validate.Result or its
	// findings); stored and returned verbatim. Empty means none.
	Findings json.RawMessage
	// Worker names the worker that ran the check. When set, RecordCheck
	// requires the domain to be claimed by this worker.
	Worker string
}

// Decision is one state change and why it was taken.
type Decision struct {
	ID     int64 // assigned by the store, rising
	Domain string
	At     time.Time
	From   State
	To     State
	Reason string
}

// Transition is a compare-and-set state change: applied only when the
// domain is in From, recorded as a Decision with Reason.
type Transition struct {
	From   State
	To     State
	Reason string
}

// CheckUpdate is everything one check changes, written in one transaction:
// the check record, the domain's counters and next check time, optionally
// new MX patterns and a state transition. It also releases the worker's
// claim on the domain.
type CheckUpdate struct {
	Check        CheckRecord
	NextCheck    time.Time
	ChecksPassed int
	PassingSince *time.Time
	FailingSince *time.Time
	// MXPatterns, when non-nil, replaces the declared patterns (a domain
	// that follows its MTA-STS policy).
	MXPatterns []string
	// Transition, when non-nil, changes the state; if the domain is not in
	// Transition.From nothing at all is written and ErrConflict returned.
	Transition *Transition
}

// Detail is what a domain's status shows, read at one moment
// (DomainDetail).
type Detail struct {
	Domain    Domain
	Checks    []CheckRecord // newest first, at most the limit asked; never nil
	Decisions []Decision    // oldest first; never nil
	// UnusedProofs: the domain has a proof neither used nor superseded
	// (open, or expired since). Only then can Proofs hold an open one.
	UnusedProofs bool
}

// Filter selects domains for ListDomains. The zero Filter selects all.
type Filter struct {
	States []State // any of these; empty: every state
	After  string  // only names sorting after this one (paging)
	Limit  int     // at most this many; 0: no limit
}

// ListRecord is the metadata of one generated list (the signed bytes
// themselves live in the publish archive).
type ListRecord struct {
	Serial    int64
	Timestamp time.Time
	Expires   time.Time
	SHA256    string // hex digest of the list bytes
	Entries   int    // number of policies
}

// Store is the persistent state of the service. Implementations are safe for
// concurrent use. Methods take ctx first; times are caller-supplied.
type Store interface {
	// AddDomain inserts a new domain (ErrAlreadyExists if the name is
	// taken, whatever its state; ErrInvalid unless ValidName). A zero CreatedAt/UpdatedAt is set to now;
	// an empty State is pending.
	AddDomain(ctx context.Context, d Domain) error
	// AddDomains adds many domains in one transaction (bulk imports):
	// errs[i] is AddDomain's error for ds[i] (nil when added); err is for the
	// batch as a whole (then nothing was added).
	AddDomains(ctx context.Context, ds []Domain) (errs []error, err error)
	// GetDomain returns one domain or ErrNotFound.
	GetDomain(ctx context.Context, name string) (Domain, error)
	// ListDomains returns the domains matching f, sorted by name; never nil.
	ListDomains(ctx context.Context, f Filter) ([]Domain, error)
	// CountByState returns how many domains are in each state (states with
	// none are absent).
	CountByState(ctx context.Context) (map[State]int, error)
	// UpdateDomain writes d's owner-editable and scheduling fields
	// (Contact, MXPatterns, WantEnforce, FollowMTASTS, Source, NextCheck,
	// ChecksPassed, PassingSince, FailingSince, UpdatedAt — zero: now). It
	// never changes State, history, or claims. ErrNotFound if absent.
	UpdateDomain(ctx context.Context, d Domain) error
	// Transition changes a domain's state from `from` to `to` and records
	// the decision, in one transaction. ErrConflict if the domain is not in
	// `from`; ErrNotFound if absent.
	Transition(ctx context.Context, name string, from, to State, reason string, at time.Time) error
	// RequestRemoval moves a domain in any state but removed to
	// removal_requested, recording the decision and superseding its open
	// add proof. ErrNotFound if absent, ErrConflict if already removed; a
	// no-op if already requested.
	RequestRemoval(ctx context.Context, name, reason string, at time.Time) error

	// RecordCheck applies one CheckUpdate in one transaction (see
	// CheckUpdate). ErrNotFound if the domain is absent; ErrConflict if the
	// transition's From does not match or the check's Worker no longer
	// holds the claim — and then nothing is written.
	RecordCheck(ctx context.Context, u CheckUpdate) error
	// RecordChecks applies many updates in one transaction for speed. Each
	// update succeeds or fails alone: errs[i] is RecordCheck's error for
	// us[i] (nil on success) and the failed ones write nothing. err is for
	// the batch as a whole (then nothing was written).
	RecordChecks(ctx context.Context, us []CheckUpdate) (errs []error, err error)
	// Checks returns a domain's checks at or after since, newest first, at
	// most limit (0: all); never nil.
	Checks(ctx context.Context, domain string, since time.Time, limit int) ([]CheckRecord, error)
	// DomainDetail returns a domain with its latest checks (at most
	// checkLimit; 0: all) and every decision, read at one moment (one read
	// transaction), for status pages: one call instead of GetDomain,
	// Checks, Decisions and Proofs. ErrNotFound if absent.
	DomainDetail(ctx context.Context, name string, checkLimit int) (Detail, error)
	// PruneChecks deletes the check history older than before (decisions
	// are kept forever) and returns how many checks it deleted.
	PruneChecks(ctx context.Context, before time.Time) (int64, error)
	// Decisions returns a domain's decisions, oldest first; never nil.
	Decisions(ctx context.Context, domain string) ([]Decision, error)

	// ClaimDue claims up to limit domains that are due (NextCheck <= now),
	// not removed, and not claimed by a live lease, for worker until
	// now+lease, and returns them ordered by NextCheck. A claim whose
	// lease has expired (its worker died) is claimed again. Concurrent
	// callers never receive the same domain under live leases.
	ClaimDue(ctx context.Context, worker string, now time.Time, limit int, lease time.Duration) ([]Domain, error)
	// NextDue returns the earliest time at which ClaimDue would hand out a
	// domain: the earliest NextCheck of the domains not removed, or, for a
	// domain under a lease, the later of its NextCheck and the lease's end.
	// It may lie in the past (a domain is due now), and it may be earlier
	// than that when many of the earliest domains are leased (a bounded
	// read), never later. ErrNotFound when no domain will ever be due. The
	// service sleeps until then.
	NextDue(ctx context.Context) (time.Time, error)
	// Release drops worker's claims on the named domains without
	// recording a check, setting their NextCheck to next (zero: unchanged).
	Release(ctx context.Context, worker string, names []string, next time.Time) error

	// NextSerial returns a new list serial, strictly greater than every
	// serial it returned before and every saved list's serial.
	NextSerial(ctx context.Context) (int64, error)
	// SaveList records a generated list's metadata (ErrAlreadyExists if
	// the serial was saved before).
	SaveList(ctx context.Context, l ListRecord) error
	// LatestList returns the metadata of the highest saved serial, or
	// ErrNotFound.
	LatestList(ctx context.Context) (ListRecord, error)

	// AddOptOut puts a domain on the never-probe list (idempotent).
	AddOptOut(ctx context.Context, domain, reason string, at time.Time) error
	// RemoveOptOut takes it off again (idempotent).
	RemoveOptOut(ctx context.Context, domain string) error
	// IsOptedOut reports whether a domain must never be probed.
	IsOptedOut(ctx context.Context, domain string) (bool, error)

	// Declare adds a domain or opens it again, in one transaction, so that
	// no worker or second door interleaves:
	//   - absent: inserted in To (pending with its proof, or validating with
	//     a pending → validating decision);
	//   - pending: its declared fields replaced; To pending: the new proof
	//     supersedes the open one; To validating: moved, and open add
	//     proofs superseded;
	//   - removal_requested, removed: declared fields replaced, counters
	//     reset, due at once, moved to To with a decision;
	//   - validating, testing, enforce, demoted: To validating (proven)
	//     declares the fields again without a state change; To pending:
	//     ErrConflict and nothing written.
	// ErrInvalid for a bad name, To or missing proof.
	Declare(ctx context.Context, d Declaration) (Declared, error)
	// AddProof records a new proof for an existing domain, superseding the
	// open proof of the same domain and purpose, and returns its ID.
	// ErrNotFound if the domain is absent; ErrConflict if it is removed.
	AddProof(ctx context.Context, p Proof) (int64, error)
	// UseProof uses one open proof and applies what it proves, in one
	// transaction: add → pending → validating (counters reset, due at
	// once), or pending → removed with Withdraw; remove → removal_requested
	// (already requested: only marked used). ErrNotFound if no proof of
	// that domain has the ID or token hash; ErrProofUsed, ErrProofSuperseded,
	// ErrProofExpired (at u.At); ErrConflict if the domain is not in a state
	// the proof applies to. Nothing is written when it fails. It returns
	// the used proof and the domain's state before and after.
	UseProof(ctx context.Context, u ProofUse) (UsedProof, error)
	// ProofByToken returns the proof with that token hash, or ErrNotFound.
	ProofByToken(ctx context.Context, tokenHash string) (Proof, error)
	// Proofs returns a domain's proofs, newest first; never nil.
	Proofs(ctx context.Context, domain string) ([]Proof, error)
	// OpenProofs returns proofs open at `at` (not used, not superseded,
	// not expired) with IDs above afterID, by ID, at most limit (0: all);
	// never nil.
	OpenProofs(ctx context.Context, at time.Time, afterID int64, limit int) ([]Proof, error)
	// PruneProofs deletes the proofs that expired before `before` (used or
	// not; the decisions keep what they proved) and returns how many.
	PruneProofs(ctx context.Context, before time.Time) (int64, error)

	// Close releases the store's resources.
	Close() error
}
