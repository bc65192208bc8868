// Package lifecycle is a domain's life below every door: the web form
// (submit), the pull-request door, and the operator's `domains add/remove`
// call these functions and nothing else to add a domain, prove its
// ownership, withdraw it or ask for its removal. Each operation is one store
// transaction (store.Declare, store.AddProof, store.UseProof,
// store.RequestRemoval), so no worker round or second door can interleave.
//
// # API (final names)
//
//	type Lifecycle struct{ Store store.Store; TXT TXTLookup; Now func() time.Time; TokenTTL, ProofRetention time.Duration; Rand io.Reader }
//	type TXTLookup interface{ LookupTXT(ctx, name string) ([]string, error) }
//	type Request struct{ Domain, Contact string; WantEnforce, FollowMTASTS bool; MXPatterns []string; Source string }
//	type Purpose string      // PurposeAdd, PurposeRemove
//	type Proof struct{ Domain string; Purpose Purpose; DNSName, DNSValue, MailTo, Token string; Expires time.Time; Previous store.State }
//	type Evidence struct{ By Voucher; Detail string }   // By: ByOperator, ByPullRequest
//	type Change struct{ Domain string; From, To store.State }
//	type RetryReport struct{ Checked, Proven, Failed int; Pruned int64 }
//	func HashToken(token string) string   // hex SHA-256 of the lower-case token, as the store keeps it
//
//	(*Lifecycle).Submit(ctx, Request) (Proof, error)                 new/pending/removal_requested/removed → pending + add proof
//	(*Lifecycle).RequestRemoval(ctx, domain, source) (Proof, error)  a remove proof (domain stays as it is until proven)
//	(*Lifecycle).PendingProofs(ctx, domain) ([]Proof, error)         the open proofs (Token empty), for status pages
//	(*Lifecycle).PeekToken(ctx, domain, token) (Purpose, error)      GET of the mailed link: checks, consumes nothing
//	(*Lifecycle).ConfirmToken(ctx, domain, token) (Change, error)    POST: uses the token → validating / removal_requested
//	(*Lifecycle).Withdraw(ctx, domain, token) (Change, error)        POST with an add token: pending → removed
//	(*Lifecycle).VerifyDNS(ctx, domain) (Change, error)              TXT at _starttls-preload.<domain> == an open proof's DNSValue
//	(*Lifecycle).AdmitProven(ctx, Request, Evidence) (Change, error) ownership proven elsewhere → validating (or declared again)
//	(*Lifecycle).RemoveProven(ctx, domain, Evidence) (Change, error) removal proven elsewhere → removal_requested
//	(*Lifecycle).RetryPendingDNS(ctx) (RetryReport, error)           the service's loop: VerifyDNS for every open proof,
//	                                                                 then PruneProofs
//	(*Lifecycle).PruneProofs(ctx) (int64, error)                     deletes proofs expired for longer than ProofRetention
//
// Sentinel errors: ErrInvalidRequest, ErrNotFound, ErrAlreadyActive,
// ErrAlreadyRemoved, ErrTokenInvalid (unknown, wrong domain; also matched by
// ErrTokenSuperseded), ErrTokenSuperseded, ErrTokenUsed, ErrTokenExpired,
// ErrNoPendingProof, ErrProofMismatch, ErrStateChanged.
// (Changed from the first sketch: ErrAlreadyListed is ErrAlreadyActive;
// ConfirmToken, VerifyDNS, AdmitProven, RemoveProven and Withdraw return a
// Change; Withdraw needs the mailed add token, so that only the mailbox's
// owner can drop a submission; AdmitProven/RemoveProven take an Evidence.)
//
// # States
//
// A domain is pending from its submission until its ownership is proven,
// then validating while the service collects passing checks, then listed
// (testing, enforce, demoted; the admission package decides those).
// removal_requested leaves the next list and becomes removed; a removed
// domain keeps its history and may be submitted again.
//
//	Submit            absent, pending, removal_requested, removed → pending (a new add proof supersedes the open one)
//	                  validating, testing, enforce, demoted → ErrAlreadyActive, nothing written: a domain
//	                  already checked or listed is not put back to pending by a stranger's form; its
//	                  owner declares new patterns through a proven door (AdmitProven: operator or PR)
//	ConfirmToken/VerifyDNS with an add proof:    pending → validating
//	ConfirmToken/VerifyDNS with a remove proof:  any state but removed → removal_requested
//	Withdraw (add token)                         pending → removed
//	AdmitProven       absent, pending, removal_requested, removed → validating;
//	                  validating and listed: patterns, contact and mode declared again, state kept
//	RemoveProven      any state but removed → removal_requested (a pending submission's proof is superseded)
//
// A domain submitted through two doors (the web form, then a pull request)
// is one domain: the second declaration finds the row of the first. Source
// records the door of the latest declaration ("web", "operator", a PR URL).
//
// # Proofs
//
// Every proof has two forms, either of which proves control of the domain:
//
//   - a token mailed to postmaster@<domain> (RFC 2142 §2): 128 bits from
//     crypto/rand, written as 26 lower-case base32 characters. Only its
//     SHA-256 is stored; the plaintext is in the returned Proof once and
//     never again. The link's GET calls PeekToken, which consumes nothing
//     (mail scanners follow links); the page's POST calls ConfirmToken,
//     which uses it once.
//   - a TXT record at _starttls-preload.<domain> whose value is the proof's
//     DNSValue ("starttls-preload-verify=" and 26 base32 characters, random
//     for each proof so that a stranger's later submission with other
//     patterns cannot be proven by the owner's older record). VerifyDNS
//     checks it on demand and RetryPendingDNS in the service's loop until
//     the proof expires. This form works when the mail servers are gone,
//     which is when a removal is most often wanted.
//
// A proof expires TokenTTL (72 h) after it was made, and the expiry is
// enforced at use. A newer request for the same domain and purpose
// supersedes the older proof in the same transaction (the older link and
// record then prove nothing); an admission by other means supersedes open
// add proofs. Rate limiting of mails is the web door's job.
//
// Every state change is a store decision whose reason starts with a code
// from package admission (admission.CodeOwnershipMail, CodeOwnershipDNS,
// CodeOwnershipPR, CodeAddedByOperator, CodeReopened, CodeWithdrawn,
// CodeRemovalMail, CodeRemovalDNS, CodeRemovalPR, CodeRequested), followed
// by the evidence.
package lifecycle

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalidRequest: a field of the request is refused (name not as
	// the store keeps it, no MX pattern, a "*.suffix" MX pattern over a
	// public suffix, a contact that is not an address).
	ErrInvalidRequest = errors.New("lifecycle: invalid request")
	// ErrNotFound: the domain is not in the store.
	ErrNotFound = errors.New("lifecycle: domain not found")
	// ErrAlreadyActive: Submit of a domain that is validating or listed.
	ErrAlreadyActive = errors.New("lifecycle: domain is already being checked or listed")
	// ErrAlreadyRemoved: a removal of a domain that is removed.
	ErrAlreadyRemoved = errors.New("lifecycle: domain is already removed")
	// ErrTokenInvalid: no proof of this domain has this token.
	ErrTokenInvalid = errors.New("lifecycle: token is not valid for this domain")
	// ErrTokenSuperseded: a newer request replaced this token's proof.
	// errors.Is(ErrTokenSuperseded, ErrTokenInvalid) holds.
	ErrTokenSuperseded = wrapped{"lifecycle: token was replaced by a newer request", ErrTokenInvalid}
	// ErrTokenUsed: the token was used before.
	ErrTokenUsed = errors.New("lifecycle: token already used")
	// ErrTokenExpired: the token's expiry has passed.
	ErrTokenExpired = errors.New("lifecycle: token expired")
	// ErrNoPendingProof: VerifyDNS of a domain with no open proof.
	ErrNoPendingProof = errors.New("lifecycle: no pending ownership proof")
	// ErrProofMismatch: the TXT record is absent or holds another value.
	ErrProofMismatch = errors.New("lifecycle: TXT record does not match the pending proof")
	// ErrStateChanged: the domain left the state the proof was for (an
	// operator acted meanwhile); nothing was written.
	ErrStateChanged = errors.New("lifecycle: domain's state changed; the proof no longer applies")
)

// wrapped is a sentinel that also matches a more general one.
type wrapped struct {
	msg string
	err error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.err }

// DefaultTokenTTL is how long a proof stands.
const DefaultTokenTTL = 72 * time.Hour

// DNSPrefix is the label under which TXT proofs are published.
const DNSPrefix = "_starttls-preload."

// DNSValuePrefix starts every DNS proof value.
const DNSValuePrefix = "starttls-preload-verify="

// TXTLookup looks up the TXT strings at a name (each record's strings
// joined). *validate.Validator implements it. A name without records is
// nil, nil.
type TXTLookup interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Purpose is what a proof proves.
type Purpose = store.Purpose

// The purposes.
const (
	PurposeAdd    = store.PurposeAdd
	PurposeRemove = store.PurposeRemove
)

// Request is a domain with what its owner declares. Domain must already be
// normalised (listgen.ParseDomain); MXPatterns are normalised here.
type Request struct {
	Domain       string
	Contact      string // e-mail address told about failures; empty: keep the current one
	WantEnforce  bool
	FollowMTASTS bool
	MXPatterns   []string
	Source       string // "web", "operator", or the PR's URL
}

// Proof is what the owner must do to prove control of the domain: publish
// DNSValue as a TXT record at DNSName, or follow the link with Token that
// is mailed to MailTo.
type Proof struct {
	Domain   string
	Purpose  Purpose
	DNSName  string // _starttls-preload.<domain>
	DNSValue string
	MailTo   string // postmaster@<domain>
	// Token is the plaintext token for the mailed link; only Submit and
	// RequestRemoval return it, once. Empty elsewhere.
	Token   string
	Expires time.Time
	// Previous is, from Submit only, the domain's state before the
	// submission ("" for a new domain).
	Previous store.State
}

// Evidence is why ownership counts as proven by another door: who vouches
// (By) and what they saw (Detail, e.g. "TXT _starttls-preload.example.com
// names https://github.com/o/r/pull/7"). The decision's reason is the
// operation's code for By followed by Detail.
type Evidence struct {
	By     Voucher
	Detail string
}

// Voucher is who proved ownership outside the mailed token and the TXT
// proof of this package.
type Voucher string

// The vouchers.
const (
	// ByOperator: an operator (domains add --skip-ownership, domains remove).
	// Codes: admission.CodeAddedByOperator, admission.CodeRequested.
	ByOperator Voucher = "operator"
	// ByPullRequest: the PR door found the PR's TXT proof (or, for a
	// removal, a maintainer's label). Codes: admission.CodeOwnershipPR,
	// admission.CodeRemovalPR.
	ByPullRequest Voucher = "pull_request"
)

// Change is what an operation did to a domain's state: From is "" for a
// new domain; From == To when the state was kept.
type Change struct {
	Domain string
	From   store.State
	To     store.State
}

// RetryReport counts what RetryPendingDNS did.
type RetryReport struct {
	Checked int   // open proofs whose TXT record was looked up
	Proven  int   // of them, proven and used
	Failed  int   // look-ups that failed (DNS errors), retried next time
	Pruned  int64 // proofs deleted, expired for longer than ProofRetention
}

// Lifecycle runs the operations on a store. Store is required; the zero
// values of the others are defaults (no TXT lookups: VerifyDNS fails).
type Lifecycle struct {
	Store store.Store
	// TXT looks up DNS proofs (the validator's configured resolver).
	TXT TXTLookup
	// Now is the clock (default time.Now).
	Now func() time.Time
	// TokenTTL is how long a proof stands (default DefaultTokenTTL).
	TokenTTL time.Duration
	// Rand is the source of tokens (default crypto/rand).
	Rand io.Reader
	// ProofRetention is how long proofs are kept after they expired
	// (default DefaultProofRetention); RetryPendingDNS deletes older ones.
	ProofRetention time.Duration
}

// DefaultProofRetention is how long an expired proof is kept (for the
// status page and for audits) before it is deleted.
const DefaultProofRetention = 30 * 24 * time.Hour
