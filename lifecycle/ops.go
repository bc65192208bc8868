package lifecycle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode"

	"golang.org/x/net/publicsuffix"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/store"
)

// How a proof was used (store.Proof.UsedBy).
const (
	usedByMail = "mail"
	usedByDNS  = "dns"
)

// Bounds on what strangers send.
const (
	maxToken   = 64  // a token is 26 characters
	maxContact = 254 // RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its brackets
	maxSource  = 512
	maxDetail  = 512
)

// tokenEncoding writes the 128 random bits of a token or DNS value.
var tokenEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

func (l *Lifecycle) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}

func (l *Lifecycle) ttl() time.Duration {
	if l.TokenTTL > 0 {
		return l.TokenTTL
	}
	return DefaultTokenTTL
}

// secret returns 128 bits from Rand (crypto/rand by default) as 26
// lower-case base32 characters.
func (l *Lifecycle) secret() (string, error) {
	r := l.Rand
	if r == nil {
		r = rand.Reader
	}
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("lifecycle: reading random bits: %w", err)
	}
	return strings.ToLower(tokenEncoding.EncodeToString(b[:])), nil
}

// HashToken is how a token is kept: the hex SHA-256 of its lower-case
// form (store.Proof.TokenHash).
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(token)))
	return hex.EncodeToString(sum[:])
}

// newProof makes a proof: the store's row (only the token's hash) and the
// owner's instructions (with the token, once).
func (l *Lifecycle) newProof(domain string, purpose Purpose, source string, now time.Time) (store.Proof, Proof, error) {
	token, err := l.secret()
	if err != nil {
		return store.Proof{}, Proof{}, err
	}
	value, err := l.secret()
	if err != nil {
		return store.Proof{}, Proof{}, err
	}
	sp := store.Proof{Domain: domain, Purpose: purpose, TokenHash: HashToken(token), DNSValue: DNSValuePrefix + value,
		Source: source, CreatedAt: now, Expires: now.Add(l.ttl())}
	return sp, instructions(sp, token), nil
}

// instructions is the owner's side of a stored proof.
func instructions(p store.Proof, token string) Proof {
	return Proof{Domain: p.Domain, Purpose: p.Purpose, DNSName: DNSPrefix + p.Domain, DNSValue: p.DNSValue,
		MailTo: "postmaster@" + p.Domain, Token: token, Expires: store.Time(p.Expires)}
}

// clean removes control characters from text that goes into the store
// and cuts it to max bytes (on a character boundary).
func clean(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return strings.TrimSpace(s)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func checkName(domain string) error {
	if !store.ValidName(domain) {
		return fmt.Errorf("%w: %q is not a normalised domain name", ErrInvalidRequest, clean(domain, 64))
	}
	return nil
}

// checkRequest validates and normalises a request.
func checkRequest(r Request) (Request, error) {
	if err := checkName(r.Domain); err != nil {
		return r, err
	}
	patterns, err := admission.NormalizePatterns(r.MXPatterns)
	if err != nil {
		return r, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	for _, p := range patterns {
		// The list's linter refuses the same (listgen mx.public_suffix):
		// "*.co.uk" would match any host under a public suffix.
		if host, wild := strings.CutPrefix(p, "*."); wild {
			if suffix, _ := publicsuffix.PublicSuffix(host); suffix == host {
				return r, fmt.Errorf("%w: MX pattern %q would match any host under the public suffix %q", ErrInvalidRequest, p, host)
			}
		}
	}
	r.MXPatterns = patterns
	if r.Contact != "" {
		a, err := mail.ParseAddress(r.Contact)
		if err != nil || len(r.Contact) > maxContact || a.Name != "" || !strings.Contains(a.Address, "@") {
			return r, fmt.Errorf("%w: contact %q is not an e-mail address", ErrInvalidRequest, clean(r.Contact, 64))
		}
		r.Contact = a.Address
	}
	r.Source = clean(r.Source, maxSource)
	return r, nil
}

func (r Request) domain() store.Domain {
	return store.Domain{Name: r.Domain, Contact: r.Contact, MXPatterns: r.MXPatterns, WantEnforce: r.WantEnforce,
		FollowMTASTS: r.FollowMTASTS, Source: r.Source}
}

// Submit asks for a domain's admission: it becomes pending with a new add
// proof, in one transaction (store.Declare). A domain that is validating or
// listed is refused with ErrAlreadyActive and nothing is written.
func (l *Lifecycle) Submit(ctx context.Context, r Request) (Proof, error) {
	r, err := checkRequest(r)
	if err != nil {
		return Proof{}, err
	}
	now := l.now()
	sp, p, err := l.newProof(r.Domain, PurposeAdd, r.Source, now)
	if err != nil {
		return Proof{}, err
	}
	got, err := l.Store.Declare(ctx, store.Declaration{Domain: r.domain(), To: store.StatePending, Proof: &sp,
		Reason: admission.CodeReopened + ": submitted again (" + sourceText(r.Source) + ")", At: now})
	switch {
	case errors.Is(err, store.ErrConflict):
		return Proof{}, fmt.Errorf("%w: %s", ErrAlreadyActive, r.Domain)
	case err != nil:
		return Proof{}, fmt.Errorf("lifecycle: submitting %s: %w", r.Domain, err)
	}
	p.Previous = got.From
	return p, nil
}

func sourceText(source string) string {
	if source == "" {
		return "source not given"
	}
	return "through " + source
}

// RequestRemoval makes a remove proof for a domain in any state but
// removed, superseding an older one; the domain stays as it is until the
// proof is used. ErrNotFound, ErrAlreadyRemoved.
func (l *Lifecycle) RequestRemoval(ctx context.Context, domain, source string) (Proof, error) {
	if err := checkName(domain); err != nil {
		return Proof{}, err
	}
	sp, p, err := l.newProof(domain, PurposeRemove, clean(source, maxSource), l.now())
	if err != nil {
		return Proof{}, err
	}
	_, err = l.Store.AddProof(ctx, sp)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Proof{}, fmt.Errorf("%w: %s", ErrNotFound, domain)
	case errors.Is(err, store.ErrConflict):
		return Proof{}, fmt.Errorf("%w: %s", ErrAlreadyRemoved, domain)
	case err != nil:
		return Proof{}, fmt.Errorf("lifecycle: removal proof for %s: %w", domain, err)
	}
	return p, nil
}

// PendingProofs returns the domain's open proofs (Token empty), newest
// first; never nil. A status page shows them as the TXT record to publish.
func (l *Lifecycle) PendingProofs(ctx context.Context, domain string) ([]Proof, error) {
	ps, err := l.Store.Proofs(ctx, domain)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: proofs of %s: %w", domain, err)
	}
	now := l.now()
	out := []Proof{}
	for _, p := range ps {
		if p.Open(now) {
			out = append(out, instructions(p, ""))
		}
	}
	return out, nil
}

// tokenError maps the store's refusals of a proof to this package's.
func tokenError(domain string, err error) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return ErrTokenInvalid
	case errors.Is(err, store.ErrProofUsed):
		return ErrTokenUsed
	case errors.Is(err, store.ErrProofSuperseded):
		return ErrTokenSuperseded
	case errors.Is(err, store.ErrProofExpired):
		return ErrTokenExpired
	case errors.Is(err, store.ErrConflict):
		return fmt.Errorf("%w: %s", ErrStateChanged, domain)
	}
	return fmt.Errorf("lifecycle: proof of %s: %w", domain, err)
}

// lookupToken finds the proof of domain that token names.
func (l *Lifecycle) lookupToken(ctx context.Context, domain, token string) (store.Proof, error) {
	if token == "" || len(token) > maxToken || !store.ValidName(domain) {
		return store.Proof{}, ErrTokenInvalid
	}
	p, err := l.Store.ProofByToken(ctx, HashToken(token))
	if err != nil {
		return store.Proof{}, tokenError(domain, err)
	}
	if p.Domain != domain {
		return store.Proof{}, ErrTokenInvalid
	}
	return p, nil
}

// PeekToken reports what the token would prove, consuming nothing: the GET
// of the mailed link, which mail scanners follow too. It refuses as
// ConfirmToken would (ErrTokenInvalid, ErrTokenSuperseded, ErrTokenUsed,
// ErrTokenExpired, ErrStateChanged).
func (l *Lifecycle) PeekToken(ctx context.Context, domain, token string) (Purpose, error) {
	p, err := l.lookupToken(ctx, domain, token)
	if err != nil {
		return "", err
	}
	d, err := l.Store.GetDomain(ctx, domain)
	if err != nil {
		return "", tokenError(domain, err)
	}
	if _, err := store.ProofOutcome(p, store.ProofUse{}, d.State, l.now()); err != nil {
		return "", tokenError(domain, err)
	}
	return p.Purpose, nil
}

// ConfirmToken uses the token once, in one transaction (the POST of the
// confirmation page): an add proof moves the pending domain to validating,
// a remove proof moves it to removal_requested.
func (l *Lifecycle) ConfirmToken(ctx context.Context, domain, token string) (Change, error) {
	p, err := l.lookupToken(ctx, domain, token)
	if err != nil {
		return Change{}, err
	}
	reason := admission.CodeOwnershipMail + ": the link mailed to postmaster@" + domain + " was confirmed"
	if p.Purpose == PurposeRemove {
		reason = admission.CodeRemovalMail + ": removal confirmed by the link mailed to postmaster@" + domain
	}
	return l.use(ctx, store.ProofUse{Domain: domain, ID: p.ID, UsedBy: usedByMail, Reason: reason, At: l.now()})
}

// Withdraw uses a pending domain's add token to drop the submission
// (pending → removed), for an owner who did not ask for it or changed
// their mind. Only the mailbox's owner has the token; a remove token is
// ErrTokenInvalid here.
func (l *Lifecycle) Withdraw(ctx context.Context, domain, token string) (Change, error) {
	p, err := l.lookupToken(ctx, domain, token)
	if err != nil {
		return Change{}, err
	}
	if p.Purpose != PurposeAdd {
		return Change{}, ErrTokenInvalid
	}
	return l.use(ctx, store.ProofUse{Domain: domain, ID: p.ID, UsedBy: usedByMail, Withdraw: true,
		Reason: admission.CodeWithdrawn + ": withdrawn by the link mailed to postmaster@" + domain, At: l.now()})
}

func (l *Lifecycle) use(ctx context.Context, u store.ProofUse) (Change, error) {
	used, err := l.Store.UseProof(ctx, u)
	if err != nil {
		return Change{}, tokenError(u.Domain, err)
	}
	return Change{Domain: u.Domain, From: used.From, To: used.To}, nil
}

// VerifyDNS looks up the TXT records at _starttls-preload.<domain> and uses
// the domain's open proof whose DNSValue one of them equals exactly (the
// add or the remove proof). ErrNoPendingProof when no proof is open,
// ErrProofMismatch when no record matches (or there is none); a failed
// look-up is another error (try again later).
func (l *Lifecycle) VerifyDNS(ctx context.Context, domain string) (Change, error) {
	if err := checkName(domain); err != nil {
		return Change{}, err
	}
	if l.TXT == nil {
		return Change{}, errors.New("lifecycle: no DNS resolver configured for TXT proofs")
	}
	now := l.now()
	ps, err := l.Store.Proofs(ctx, domain)
	if err != nil {
		return Change{}, fmt.Errorf("lifecycle: proofs of %s: %w", domain, err)
	}
	var open []store.Proof
	for _, p := range ps {
		if p.Open(now) {
			open = append(open, p)
		}
	}
	if len(open) == 0 {
		return Change{}, fmt.Errorf("%w: %s", ErrNoPendingProof, domain)
	}
	name := DNSPrefix + domain
	txts, err := l.TXT.LookupTXT(ctx, name)
	if err != nil {
		return Change{}, fmt.Errorf("lifecycle: looking up TXT %s: %w", name, err)
	}
	for _, p := range open {
		for _, txt := range txts {
			if txt != p.DNSValue {
				continue
			}
			reason := admission.CodeOwnershipDNS + ": TXT " + name + " holds the proof's value"
			if p.Purpose == PurposeRemove {
				reason = admission.CodeRemovalDNS + ": removal proven by TXT " + name
			}
			return l.use(ctx, store.ProofUse{Domain: domain, ID: p.ID, UsedBy: usedByDNS, Reason: reason, At: l.now()})
		}
	}
	return Change{}, fmt.Errorf("%w: %s has %d TXT records, none is %q", ErrProofMismatch, name, len(txts), open[0].DNSValue)
}

// codeFor is the reason code of an operation vouched for by v.
func codeFor(v Voucher, removal bool) (string, error) {
	switch {
	case v == ByOperator && !removal:
		return admission.CodeAddedByOperator, nil
	case v == ByOperator:
		return admission.CodeRequested, nil
	case v == ByPullRequest && !removal:
		return admission.CodeOwnershipPR, nil
	case v == ByPullRequest:
		return admission.CodeRemovalPR, nil
	}
	return "", fmt.Errorf("%w: unknown voucher %q", ErrInvalidRequest, clean(string(v), 32))
}

func reason(code string, ev Evidence) string {
	if d := clean(ev.Detail, maxDetail); d != "" {
		return code + ": " + d
	}
	return code
}

// AdmitProven admits a domain whose ownership another door proved (an
// operator's --skip-ownership, a pull request's TXT record), in one
// transaction: absent, pending, removal_requested and removed domains
// become validating; a validating or listed domain has its patterns,
// contact and mode declared again and keeps its state. Open add proofs
// are superseded.
func (l *Lifecycle) AdmitProven(ctx context.Context, r Request, ev Evidence) (Change, error) {
	r, err := checkRequest(r)
	if err != nil {
		return Change{}, err
	}
	code, err := codeFor(ev.By, false)
	if err != nil {
		return Change{}, err
	}
	got, err := l.Store.Declare(ctx, store.Declaration{Domain: r.domain(), To: store.StateValidating, Reason: reason(code, ev), At: l.now()})
	if err != nil {
		return Change{}, fmt.Errorf("lifecycle: admitting %s: %w", r.Domain, err)
	}
	return Change{Domain: r.Domain, From: got.From, To: got.To}, nil
}

// RemoveProven requests the removal of a domain in any state but removed
// whose ownership another door proved (an operator, a pull request's proof
// or a maintainer's label): → removal_requested, which leaves the next
// list. Already requested: nothing changes. ErrNotFound, ErrAlreadyRemoved.
func (l *Lifecycle) RemoveProven(ctx context.Context, domain string, ev Evidence) (Change, error) {
	if err := checkName(domain); err != nil {
		return Change{}, err
	}
	code, err := codeFor(ev.By, true)
	if err != nil {
		return Change{}, err
	}
	// The state before, for the caller's message; the transition itself
	// is the store's compare-and-set.
	d, err := l.Store.GetDomain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return Change{}, fmt.Errorf("%w: %s", ErrNotFound, domain)
	} else if err != nil {
		return Change{}, fmt.Errorf("lifecycle: reading %s: %w", domain, err)
	}
	err = l.Store.RequestRemoval(ctx, domain, reason(code, ev), l.now())
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Change{}, fmt.Errorf("%w: %s", ErrNotFound, domain)
	case errors.Is(err, store.ErrConflict):
		return Change{}, fmt.Errorf("%w: %s", ErrAlreadyRemoved, domain)
	case err != nil:
		return Change{}, fmt.Errorf("lifecycle: removing %s: %w", domain, err)
	}
	return Change{Domain: domain, From: d.State, To: store.StateRemovalRequested}, nil
}

// retryPage and retryConcurrency bound RetryPendingDNS.
const (
	retryPage        = 500
	retryConcurrency = 16
)

// PruneProofs deletes the proofs that expired more than ProofRetention
// ago and returns how many.
func (l *Lifecycle) PruneProofs(ctx context.Context) (int64, error) {
	keep := l.ProofRetention
	if keep <= 0 {
		keep = DefaultProofRetention
	}
	n, err := l.Store.PruneProofs(ctx, l.now().Add(-keep))
	if err != nil {
		return n, fmt.Errorf("lifecycle: pruning proofs: %w", err)
	}
	return n, nil
}

// RetryPendingDNS runs VerifyDNS once for every domain with an open proof
// (the service calls it periodically, so a TXT record published after the
// submission proves it without a click, until the proof expires), at most
// retryConcurrency look-ups at a time, then PruneProofs. Mismatches are
// normal and not errors; failed look-ups are counted in Failed. The error
// is the store's or the context's.
func (l *Lifecycle) RetryPendingDNS(ctx context.Context) (RetryReport, error) {
	rep, err := l.retryDNS(ctx)
	if err != nil {
		return rep, err
	}
	rep.Pruned, err = l.PruneProofs(ctx)
	return rep, err
}

func (l *Lifecycle) retryDNS(ctx context.Context) (RetryReport, error) {
	var rep RetryReport
	var mu sync.Mutex
	now := l.now()
	var after int64
	for {
		ps, err := l.Store.OpenProofs(ctx, now, after, retryPage)
		if err != nil {
			return rep, fmt.Errorf("lifecycle: open proofs: %w", err)
		}
		if len(ps) == 0 {
			return rep, nil
		}
		after = ps[len(ps)-1].ID
		seen := map[string]bool{}
		sem := make(chan struct{}, retryConcurrency)
		var wg sync.WaitGroup
		for _, p := range ps {
			if seen[p.Domain] {
				continue
			}
			seen[p.Domain] = true
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				_, err := l.VerifyDNS(ctx, p.Domain)
				mu.Lock()
				defer mu.Unlock()
				rep.Checked++
				switch {
				case err == nil:
					rep.Proven++
				case errors.Is(err, ErrProofMismatch), errors.Is(err, ErrNoPendingProof), errors.Is(err, ErrStateChanged),
					errors.Is(err, ErrTokenUsed), errors.Is(err, ErrTokenInvalid), errors.Is(err, ErrTokenExpired):
				default:
					rep.Failed++
				}
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if len(ps) < retryPage {
			return rep, nil
		}
	}
}
