package submit

import (
	"context"
	"errors"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

// The operations shared by the pages and their JSON twins. Each returns a
// *doorError for what the visitor did wrong (or too often) and for our
// own failures; handlers render it as a page or as JSON.

// doorError is a refusal with its HTTP status, stable code and one
// sentence for people. retry is set for 429.
type doorError struct {
	status int
	code   string
	msg    string
	retry  time.Duration
}

func (e *doorError) Error() string { return e.msg }

func badRequest(code, msg string) *doorError {
	return &doorError{status: http.StatusBadRequest, code: code, msg: msg}
}

// parseDomain normalises a visitor's domain with the one normaliser of
// the project.
func (s *Server) parseDomain(in string) (string, *doorError) {
	if strings.TrimSpace(in) == "" {
		return "", badRequest("domain.missing", "Enter a domain name, such as example.com.")
	}
	d, err := listgen.ParseDomain(in, s.c.Names)
	if err != nil {
		var ne *listgen.NameError
		if errors.As(err, &ne) {
			return "", badRequest(ne.Code, upperFirst(ne.Reason)+".")
		}
		return "", badRequest("domain.invalid", "This is not a domain name.")
	}
	return d, nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// take takes one token from each limiter or returns the 429.
func take(checks ...limitCheck) *doorError {
	for _, c := range checks {
		if ok, retry := c.l.allow(c.key); !ok {
			return &doorError{status: http.StatusTooManyRequests, code: "rate_limited", retry: retry,
				msg: "Too many requests " + c.what + "; try again later."}
		}
	}
	return nil
}

// check runs (or reuses) the live check of a normalised domain.
func (s *Server) check(ctx context.Context, r *http.Request, domain string) (*validate.Result, bool, *doorError) {
	ip := ipKey(s.clientIP(r))
	if de := take(limitCheck{s.lim.checkIP, ip, "from your address"}); de != nil {
		return nil, false, de
	}
	var limitErr *doorError
	res, started, err := s.checks.get(ctx, domain, func() error {
		if de := take(limitCheck{s.lim.checkDomain, domain, "for this domain"}); de != nil {
			limitErr = de
			return de
		}
		return nil
	})
	switch {
	case limitErr != nil:
		return nil, false, limitErr
	case errors.Is(err, errChecksBusy):
		return nil, false, &doorError{status: http.StatusServiceUnavailable, code: "busy", retry: 30 * time.Second,
			msg: "Too many checks are running now; try again in a moment."}
	case err != nil:
		s.log.WarnContext(ctx, "check failed", "domain", domain, "err", err)
		return nil, false, &doorError{status: http.StatusServiceUnavailable, code: "check_failed", msg: "The check could not be run; try again in a moment."}
	}
	return res, !started, nil
}

// webResult is the check's result as the API returns it: the object
// `check --json` prints, with every list present.
func webResult(res *validate.Result) *validate.Result {
	out := *res
	if out.MXs == nil {
		out.MXs = []validate.MXResult{}
	}
	if out.Findings == nil {
		out.Findings = []validate.Finding{}
	}
	mxs := make([]validate.MXResult, len(out.MXs))
	for i, mx := range out.MXs {
		if mx.Addresses == nil {
			mx.Addresses = []validate.AddressResult{}
		}
		mxs[i] = mx
	}
	out.MXs = mxs
	if out.MTASTS != nil && out.MTASTS.MX == nil {
		m := *out.MTASTS
		m.MX = []string{}
		out.MTASTS = &m
	}
	return &out
}

// submission is what a visitor asks: the form's or the JSON's fields.
type submission struct {
	Domain     string   `json:"domain"`
	Contact    string   `json:"contact"`
	Mode       string   `json:"mode"`
	MXPatterns []string `json:"mx_patterns"`
}

// Bounds of a submission.
const (
	maxPatterns = 20
	maxContact  = 254 // RFC 5321 §4.5.3.1.3 path length, less the brackets
)

// validContact reports whether s is one plain address: no display name,
// no line break or other control character (it must never become a
// header).
func validContact(s string) bool {
	if s == "" || len(s) > maxContact || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && a.Address == s && strings.Contains(s, "@")
}

// submit validates a submission, asks the lifecycle for a proof and mails
// its link. Nothing is stored unless every check passed.
func (s *Server) submit(ctx context.Context, r *http.Request, in submission) (proofResponse, *doorError) {
	if s.c.Lifecycle == nil {
		return proofResponse{}, &doorError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "Submissions are not open on this instance."}
	}
	ip := ipKey(s.clientIP(r))
	if de := take(limitCheck{s.lim.submitIP, ip, "from your address"}); de != nil {
		return proofResponse{}, de
	}
	domain, de := s.parseDomain(in.Domain)
	if de != nil {
		return proofResponse{}, de
	}
	contact := strings.TrimSpace(in.Contact)
	if !validContact(contact) {
		return proofResponse{}, badRequest("contact.invalid", "The contact must be one e-mail address, such as postmaster@example.com.")
	}
	var enforce bool
	switch in.Mode {
	case "", "testing":
	case "enforce":
		enforce = true
	default:
		return proofResponse{}, badRequest("mode.invalid", `The mode must be "testing" or "enforce".`)
	}
	var pats []string
	for _, p := range in.MXPatterns {
		if p = strings.TrimSpace(p); p != "" {
			pats = append(pats, p)
		}
	}
	switch {
	case len(pats) == 0:
		return proofResponse{}, badRequest("mx_patterns.missing", "Give at least one MX pattern (a host name, or *.suffix).")
	case len(pats) > maxPatterns:
		return proofResponse{}, badRequest("mx_patterns.too_many", "Give at most 20 MX patterns.")
	}
	for i, p := range pats {
		n, err := listgen.NormalizePattern(p)
		if err != nil {
			return proofResponse{}, badRequest("mx_patterns.invalid", "MX pattern "+quoteShort(p)+" is neither a host name nor *.suffix.")
		}
		pats[i] = n
	}
	slices.Sort(pats)
	pats = slices.Compact(pats)
	// A domain already checked or listed is not submitted again here
	// (the lifecycle refuses it too; this spares its MX hosts a check).
	if d, err := s.c.Store.GetDomain(ctx, domain); err == nil && !submittable(d.State) {
		return proofResponse{}, s.lifecycleFailure(ctx, "submit", domain, lifecycle.ErrAlreadyActive)
	}
	// Only an eligible domain is submitted, with patterns that cover its
	// MX hosts: the check (cached when the visitor just ran it) says so.
	// It also keeps the door from mailing the postmaster of any name.
	res, _, de := s.check(ctx, r, domain)
	if de != nil {
		return proofResponse{}, de
	}
	if !res.Eligible {
		var codes []string
		for _, f := range res.Findings {
			if f.Severity == validate.SeverityError && !slices.Contains(codes, f.Code) {
				codes = append(codes, f.Code)
			}
		}
		return proofResponse{}, &doorError{status: http.StatusUnprocessableEntity, code: "not_eligible",
			msg: domain + " does not pass the check yet (" + strings.Join(codes, ", ") + "): fix what the check shows, then submit it."}
	}
	for _, mx := range res.MXs {
		host := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if !slices.ContainsFunc(pats, func(p string) bool { return listgen.Matches(p, host) }) {
			return proofResponse{}, badRequest("mx_patterns.mismatch", "The MX host "+quoteShort(host)+" matches none of the MX patterns: add it, or a *.suffix pattern that covers it.")
		}
	}
	checks := []limitCheck{{s.lim.submitDomain, domain, "for this domain"}}
	if s.c.Mailer != nil {
		// The resend limit: each submission mails postmaster@.
		checks = append(checks, limitCheck{s.lim.mailDomain, domain, "mailing this domain's postmaster"})
	}
	if de := take(checks...); de != nil {
		return proofResponse{}, de
	}
	p, err := s.c.Lifecycle.Submit(ctx, lifecycle.Request{Domain: domain, Contact: contact, WantEnforce: enforce, MXPatterns: pats, Source: source})
	if err != nil {
		return proofResponse{}, s.lifecycleFailure(ctx, "submit", domain, err)
	}
	sent := s.mailProof(ctx, p)
	return proofResponse{Domain: domain, State: string(store.StatePending), StatusURL: s.absURL("/domains/" + domain), Proof: proofOf(p, &sent)}, nil
}

// quoteShort quotes s for a message, cut short and without control
// characters.
func quoteShort(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}

func (s *Server) lifecycleFailure(ctx context.Context, op, domain string, err error) *doorError {
	status, code, msg := lifecycleError(err)
	if status == http.StatusInternalServerError {
		s.log.ErrorContext(ctx, "lifecycle failed", "op", op, "domain", domain, "err", err)
	}
	return &doorError{status: status, code: code, msg: msg}
}

// removal asks for a removal proof of a known domain and mails its link.
func (s *Server) removal(ctx context.Context, r *http.Request, raw string) (proofResponse, *doorError) {
	if s.c.Lifecycle == nil {
		return proofResponse{}, &doorError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "Removal requests are not open on this instance."}
	}
	ip := ipKey(s.clientIP(r))
	if de := take(limitCheck{s.lim.submitIP, ip, "from your address"}); de != nil {
		return proofResponse{}, de
	}
	domain, de := s.parseDomain(raw)
	if de != nil {
		return proofResponse{}, de
	}
	d, err := s.c.Store.GetDomain(ctx, domain)
	if errors.Is(err, store.ErrNotFound) {
		return proofResponse{}, &doorError{status: http.StatusNotFound, code: "not_found", msg: "This domain is not known here."}
	} else if err != nil {
		return proofResponse{}, s.lifecycleFailure(ctx, "removal", domain, err)
	}
	checks := []limitCheck{{s.lim.submitDomain, domain, "for this domain"}}
	if s.c.Mailer != nil {
		checks = append(checks, limitCheck{s.lim.mailDomain, domain, "mailing this domain's postmaster"})
	}
	if de := take(checks...); de != nil {
		return proofResponse{}, de
	}
	p, err := s.c.Lifecycle.RequestRemoval(ctx, domain, source)
	if err != nil {
		return proofResponse{}, s.lifecycleFailure(ctx, "removal", domain, err)
	}
	sent := s.mailProof(ctx, p)
	return proofResponse{Domain: domain, State: string(d.State), StatusURL: s.absURL("/domains/" + domain), Proof: proofOf(p, &sent)}, nil
}

// changeResponse answers a proof that was accepted.
type changeResponse struct {
	Domain    string `json:"domain"`
	From      string `json:"from"`
	State     string `json:"state"`
	StatusURL string `json:"status_url"`
}

func (s *Server) changeResponse(c lifecycle.Change) changeResponse {
	return changeResponse{Domain: c.Domain, From: string(c.From), State: string(c.To), StatusURL: s.absURL("/domains/" + c.Domain)}
}

// verifyLimits are taken before every DNS verification (a look-up each).
func (s *Server) verifyLimits(r *http.Request, domain string) *doorError {
	return take(limitCheck{s.lim.verifyIP, ipKey(s.clientIP(r)), "from your address"}, limitCheck{s.lim.verifyDomain, domain, "for this domain"})
}

// tokenLimits are taken before every use or look of a mailed token: per
// client address only. A per-domain limit would let a stranger posting
// made-up tokens (no work for us, no guess can succeed against 128 bits)
// keep the owner's own press of the button answered 429.
func (s *Server) tokenLimits(r *http.Request) *doorError {
	return take(limitCheck{s.lim.verifyIP, ipKey(s.clientIP(r)), "from your address"})
}

// verify checks the pending proof's TXT record.
func (s *Server) verify(ctx context.Context, r *http.Request, raw string) (changeResponse, *doorError) {
	if s.c.Lifecycle == nil {
		return changeResponse{}, &doorError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "Proofs are not checked on this instance."}
	}
	domain, de := s.parseDomain(raw)
	if de != nil {
		return changeResponse{}, de
	}
	if de := s.verifyLimits(r, domain); de != nil {
		return changeResponse{}, de
	}
	c, err := s.c.Lifecycle.VerifyDNS(ctx, domain)
	if err != nil {
		return changeResponse{}, s.lifecycleFailure(ctx, "verify", domain, err)
	}
	return s.changeResponse(c), nil
}

// maxToken bounds a token as typed or pasted (the lifecycle's are 26
// characters).
const maxToken = 128

// tokenRequest checks what every use of a mailed token needs before the
// lifecycle sees it: proofs checked here, a domain name, a token of a sane
// length and the client's token limit. It returns the normalised domain.
func (s *Server) tokenRequest(r *http.Request, raw, token string) (string, *doorError) {
	if s.c.Lifecycle == nil {
		return "", &doorError{status: http.StatusServiceUnavailable, code: "unavailable", msg: "Proofs are not checked on this instance."}
	}
	domain, de := s.parseDomain(raw)
	if de != nil {
		return "", de
	}
	if token == "" || len(token) > maxToken {
		return "", &doorError{status: http.StatusForbidden, code: "token_invalid", msg: "This link is not valid for this domain."}
	}
	if de := s.tokenLimits(r); de != nil {
		return "", de
	}
	return domain, nil
}

// peek reports what a mailed token proves, consuming nothing.
func (s *Server) peek(ctx context.Context, r *http.Request, raw, token string) (string, lifecycle.Purpose, *doorError) {
	domain, de := s.tokenRequest(r, raw, token)
	if de != nil {
		return "", "", de
	}
	p, err := s.c.Lifecycle.PeekToken(ctx, domain, token)
	if err != nil {
		return "", "", s.lifecycleFailure(ctx, "peek", domain, err)
	}
	return domain, p, nil
}

// confirm uses a mailed token (POST only).
func (s *Server) confirm(ctx context.Context, r *http.Request, raw, token string) (changeResponse, *doorError) {
	return s.useToken(ctx, r, raw, token, "confirm", func(l Lifecycle) tokenOp { return l.ConfirmToken })
}

// withdraw uses a mailed add token to drop a pending submission (POST
// only): the mailbox's owner says it was not them.
func (s *Server) withdraw(ctx context.Context, r *http.Request, raw, token string) (changeResponse, *doorError) {
	return s.useToken(ctx, r, raw, token, "withdraw", func(l Lifecycle) tokenOp { return l.Withdraw })
}

// tokenOp is a lifecycle operation that uses a mailed token.
type tokenOp func(ctx context.Context, domain, token string) (lifecycle.Change, error)

// useToken uses a mailed token through the lifecycle operation op picks
// (picked only once tokenRequest knows there is a lifecycle).
func (s *Server) useToken(ctx context.Context, r *http.Request, raw, token, name string, op func(Lifecycle) tokenOp) (changeResponse, *doorError) {
	domain, de := s.tokenRequest(r, raw, token)
	if de != nil {
		return changeResponse{}, de
	}
	c, err := op(s.c.Lifecycle)(ctx, domain, token)
	if err != nil {
		return changeResponse{}, s.lifecycleFailure(ctx, name, domain, err)
	}
	return s.changeResponse(c), nil
}

// statusView is a domain's status: admission's fields (kept as they were),
// then what the pages add.
type statusView struct {
	admission.Detail
	StateText string    `json:"state_text"`
	Progress  progress  `json:"progress"`
	Listed    *listedIn `json:"listed"` // the current list's entry; null when not in it
	// CurrentSerial is the serial of the current list (0: none yet).
	CurrentSerial int64       `json:"current_serial"`
	PendingProofs []proofJSON `json:"pending_proofs"`
	StatusURL     string      `json:"status_url"`
}

type progress struct {
	Show     bool       `json:"-"`
	Passed   int        `json:"passed"`
	Needed   int        `json:"needed"`
	Earliest *time.Time `json:"earliest_admission,omitempty"`
}

type listedIn struct {
	Serial int64    `json:"serial"`
	Mode   string   `json:"mode"`
	MXs    []string `json:"mxs"`
}

// stateWords says a state to people.
var stateWords = map[store.State]string{
	store.StatePending:          "submitted, waiting for proof that the submitter controls the domain",
	store.StateValidating:       "control proven; being checked again and again before admission",
	store.StateTesting:          "on the list in testing mode: senders report failures but still deliver",
	store.StateEnforce:          "on the list in enforce mode: senders deliver only over STARTTLS with a valid certificate",
	store.StateDemoted:          "on the list, demoted to testing mode after failing checks",
	store.StateRemovalRequested: "removal requested: it leaves the next list",
	store.StateRemoved:          "not on the list (removed); its history is kept",
}

// historyLimit is how many checks the status shows.
const historyLimit = 100

// knownDomain normalises a name to look up: through ParseDomain, or, for
// a name it refuses that is in the store all the same (added before the
// rules, or by an operator in a lab), as the store keeps names. Reading a
// status never adds anything.
func (s *Server) knownDomain(ctx context.Context, raw string) (string, *doorError) {
	domain, de := s.parseDomain(raw)
	if de == nil {
		return domain, nil
	}
	n := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(raw)), ".")
	if store.ValidName(n) {
		if _, err := s.c.Store.GetDomain(ctx, n); err == nil {
			return n, nil
		}
	}
	return "", de
}

func (s *Server) statusOf(ctx context.Context, raw string) (statusView, *doorError) {
	domain, de := s.knownDomain(ctx, raw)
	if de != nil {
		return statusView{}, de
	}
	sd, err := s.c.Store.DomainDetail(ctx, domain, historyLimit)
	if errors.Is(err, store.ErrNotFound) {
		return statusView{}, &doorError{status: http.StatusNotFound, code: "not_found", msg: "This domain is not known here. Check it first; an eligible domain can be submitted."}
	}
	if err != nil {
		s.log.ErrorContext(ctx, "status", "domain", domain, "err", err)
		return statusView{}, &doorError{status: http.StatusInternalServerError, code: "internal", msg: "The store is unavailable; try again later."}
	}
	det := admission.DetailFrom(sd, s.c.Rules)
	v := statusView{Detail: det, StateText: stateWords[det.State], PendingProofs: []proofJSON{}, StatusURL: s.absURL("/domains/" + domain)}
	v.Progress = s.progressOf(det.Status)
	if cur, err := s.lists.current(ctx); err != nil {
		s.log.WarnContext(ctx, "reading the current list", "err", err)
	} else if cur != nil { // nil: no list published yet
		v.CurrentSerial = cur.Serial
		if e, ok := cur.lookup(domain); ok {
			v.Listed = &listedIn{Serial: cur.Serial, Mode: e.Mode, MXs: e.MXs}
		}
	}
	// Only a proof neither used nor superseded can be open.
	if s.c.Lifecycle != nil && det.State != store.StateRemoved && sd.UnusedProofs {
		ps, err := s.c.Lifecycle.PendingProofs(ctx, domain)
		if err != nil {
			s.log.WarnContext(ctx, "pending proofs", "domain", domain, "err", err)
		}
		for _, p := range ps {
			v.PendingProofs = append(v.PendingProofs, proofOf(p, nil))
		}
	}
	return v, nil
}

// progressOf is the admission progress: passes of those needed, and the
// earliest date the domain can be listed if every check passes.
func (s *Server) progressOf(st admission.Status) progress {
	r := s.c.Rules
	p := progress{Needed: r.MinChecks}
	switch {
	case admission.Listed(st.State):
		p.Show, p.Passed = true, r.MinChecks
	case st.State == store.StatePending:
		p.Show = true
	case st.State == store.StateValidating:
		p.Show = true
		p.Passed = min(st.ChecksPassed, r.MinChecks)
		now := s.c.Now()
		minDays := time.Duration(r.MinDays) * 24 * time.Hour
		// The streak starts at the next check when there is none.
		start := st.NextCheck
		if st.PassingSince != nil {
			start = *st.PassingSince
		} else if start.Before(now) {
			start = now
		}
		byDays := start.Add(minDays)
		next := st.NextCheck
		if next.Before(now) {
			next = now
		}
		byChecks := next
		if left := r.MinChecks - p.Passed; left > 1 {
			byChecks = next.Add(time.Duration(left-1) * s.c.CheckInterval)
		}
		e := byDays
		if byChecks.After(e) {
			e = byChecks
		}
		e = e.UTC()
		p.Earliest = &e
	}
	return p
}
