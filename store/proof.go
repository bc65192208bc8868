package store

import (
	"errors"
	"time"
)

// Sentinel errors of ownership proofs, matched with errors.Is. A refused
// use writes nothing.
var (
	// ErrProofUsed: the proof was used before (single use).
	ErrProofUsed = errors.New("store: proof already used")
	// ErrProofExpired: the proof's expiry has passed.
	ErrProofExpired = errors.New("store: proof expired")
	// ErrProofSuperseded: a newer proof for the same domain and purpose
	// replaced it, or the domain left the state the proof was for by
	// another way (an operator's admission).
	ErrProofSuperseded = errors.New("store: proof superseded")
)

// Purpose is what an ownership proof, once used, does.
type Purpose string

// The purposes of proofs.
const (
	PurposeAdd    Purpose = "add"    // pending → validating
	PurposeRemove Purpose = "remove" // → removal_requested
)

// Valid reports whether p is a known purpose.
func (p Purpose) Valid() bool { return p == PurposeAdd || p == PurposeRemove }

// Proof is one ownership proof: a mailed token (kept only as its SHA-256)
// and a DNS TXT value, either of which proves control of the domain. At
// most one proof per domain and purpose is open (not used, not superseded);
// a new one supersedes the older in the same transaction.
type Proof struct {
	ID        int64 // assigned by the store, rising
	Domain    string
	Purpose   Purpose
	TokenHash string // hex SHA-256 of the mailed token; the token itself is never stored
	DNSValue  string // the TXT value that proves it at _starttls-preload.<domain>
	Source    string // the door that asked for it (web, operator, a PR URL)
	CreatedAt time.Time
	Expires   time.Time // not usable at or after this time
	// UsedAt is when it was used (nil: not yet), UsedBy how ("mail", "dns").
	UsedAt *time.Time
	UsedBy string
	// SupersededAt is when a newer proof (or an admission by other means)
	// replaced it; nil while it stands.
	SupersededAt *time.Time
}

// Open reports whether p can be used at t: not used, not superseded, not
// expired.
func (p Proof) Open(t time.Time) bool {
	return p.UsedAt == nil && p.SupersededAt == nil && t.Before(p.Expires)
}

// Declaration adds a domain, or opens it again, in one transaction (see
// Store.Declare).
type Declaration struct {
	// Domain carries Name, Contact (empty: keep the current one),
	// MXPatterns, WantEnforce, FollowMTASTS and Source; the store sets the
	// rest.
	Domain Domain
	// To is StatePending (ownership still to be proven; Proof required) or
	// StateValidating (ownership proven elsewhere).
	To State
	// Proof is the new add proof when To is pending (its Domain and
	// Purpose are set by the store).
	Proof *Proof
	// Reason is the decision's reason when the state changes.
	Reason string
	At     time.Time
}

// Declared is what Declare did: the state before ("" for a new domain) and
// after, and the new proof's ID (0: none).
type Declared struct {
	From    State
	To      State
	ProofID int64
}

// UsedProof is what UseProof did: the proof as used, and the domain's
// state before and after (equal when only the proof was marked used).
type UsedProof struct {
	Proof Proof
	From  State
	To    State
}

// ProofUse uses a proof in one transaction (see Store.UseProof).
type ProofUse struct {
	Domain string
	// ID names the proof; when 0 it is found by TokenHash.
	ID        int64
	TokenHash string
	UsedBy    string // "mail", "dns"
	// Withdraw: using an add proof drops the pending domain (pending →
	// removed) instead of proving it (pending → validating).
	Withdraw bool
	Reason   string // the decision's reason
	At       time.Time
}

// Active reports whether a domain in state s is being checked or listed
// (validating, testing, enforce, demoted): Declare keeps its state.
func Active(s State) bool {
	return s == StateValidating || s == StateTesting || s == StateEnforce || s == StateDemoted
}

// CheckProof refuses a proof a backend must not store (ErrInvalid).
func CheckProof(p Proof) error {
	if !ValidName(p.Domain) || !p.Purpose.Valid() || p.TokenHash == "" || p.DNSValue == "" || p.Expires.IsZero() {
		return ErrInvalid
	}
	return nil
}

// CheckDeclaration refuses a declaration a backend must not apply
// (ErrInvalid).
func CheckDeclaration(d Declaration) error {
	if !ValidName(d.Domain.Name) {
		return ErrInvalid
	}
	switch d.To {
	case StatePending:
		if d.Proof == nil {
			return ErrInvalid
		}
		p := *d.Proof
		p.Domain, p.Purpose = d.Domain.Name, PurposeAdd
		return CheckProof(p)
	case StateValidating:
		if d.Proof != nil {
			return ErrInvalid
		}
		return nil
	}
	return ErrInvalid
}

// ProofOutcome is the rule every backend applies in UseProof: the state a
// domain in state cur moves to when proof p is used as u at `at`, or why it
// cannot be used (ErrProofUsed, ErrProofSuperseded, ErrProofExpired,
// ErrConflict, ErrInvalid). The state is cur when only the proof is marked
// used (a removal already requested).
func ProofOutcome(p Proof, u ProofUse, cur State, at time.Time) (State, error) {
	switch {
	case p.UsedAt != nil:
		return "", ErrProofUsed
	case p.SupersededAt != nil:
		return "", ErrProofSuperseded
	case !Time(at).Before(p.Expires):
		return "", ErrProofExpired
	}
	switch p.Purpose {
	case PurposeAdd:
		if cur != StatePending {
			return "", ErrConflict
		}
		if u.Withdraw {
			return StateRemoved, nil
		}
		return StateValidating, nil
	case PurposeRemove:
		switch {
		case u.Withdraw:
			return "", ErrInvalid
		case cur == StateRemoved:
			return "", ErrConflict
		case cur == StateRemovalRequested:
			return cur, nil
		}
		return StateRemovalRequested, nil
	}
	return "", ErrInvalid
}
