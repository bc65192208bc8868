package submit

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/notify"
)

// Lifecycle is what the door asks of the lifecycle package: every change of
// a domain's life is one of these calls (one store transaction each).
type Lifecycle interface {
	Submit(ctx context.Context, r lifecycle.Request) (lifecycle.Proof, error)
	RequestRemoval(ctx context.Context, domain, source string) (lifecycle.Proof, error)
	PendingProofs(ctx context.Context, domain string) ([]lifecycle.Proof, error)
	PeekToken(ctx context.Context, domain, token string) (lifecycle.Purpose, error)
	ConfirmToken(ctx context.Context, domain, token string) (lifecycle.Change, error)
	Withdraw(ctx context.Context, domain, token string) (lifecycle.Change, error)
	VerifyDNS(ctx context.Context, domain string) (lifecycle.Change, error)
}

var _ Lifecycle = (*lifecycle.Lifecycle)(nil)

// Mailer queues a mail without waiting for it to be sent.
type Mailer interface {
	Enqueue(ctx context.Context, msg notify.Message) error
}

var _ Mailer = (*notify.Mailer)(nil)

// source is the door recorded with the declarations made here.
const source = "web"

// lifecycleError maps a lifecycle error to an HTTP status, a stable code
// and one sentence for people. ok is false for errors that are ours (500).
func lifecycleError(err error) (status int, code, msg string) {
	switch {
	case errors.Is(err, lifecycle.ErrInvalidRequest):
		return http.StatusBadRequest, "invalid_request", "The request is refused: " + strings.TrimPrefix(err.Error(), "lifecycle: ") + "."
	case errors.Is(err, lifecycle.ErrNotFound):
		return http.StatusNotFound, "not_found", "This domain is not known here."
	case errors.Is(err, lifecycle.ErrAlreadyActive):
		return http.StatusConflict, "already_active", "This domain is already being checked or listed; its status page shows where it is."
	case errors.Is(err, lifecycle.ErrAlreadyRemoved):
		return http.StatusConflict, "already_removed", "This domain is already removed from the list."
	case errors.Is(err, lifecycle.ErrTokenSuperseded):
		return http.StatusGone, "token_superseded", "This link was replaced by a newer request: use the link of the latest mail."
	case errors.Is(err, lifecycle.ErrTokenInvalid):
		return http.StatusForbidden, "token_invalid", "This link is not valid for this domain."
	case errors.Is(err, lifecycle.ErrTokenUsed):
		return http.StatusConflict, "token_used", "This link was used already: it proves something once only."
	case errors.Is(err, lifecycle.ErrTokenExpired):
		return http.StatusGone, "token_expired", "This link has expired: submit the domain again for a new one."
	case errors.Is(err, lifecycle.ErrNoPendingProof):
		return http.StatusConflict, "no_pending_proof", "Nothing is waiting for a proof for this domain (or the proof expired): submit it again."
	case errors.Is(err, lifecycle.ErrProofMismatch):
		return http.StatusUnprocessableEntity, "proof_mismatch", "The TXT record is missing or holds another value. Publish exactly the name and value shown, wait for DNS to serve it, and try again."
	case errors.Is(err, lifecycle.ErrStateChanged):
		return http.StatusConflict, "state_changed", "The domain's state changed meanwhile; the proof no longer applies. Reload its status page."
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "unavailable", "The request took too long; try again."
	}
	return http.StatusInternalServerError, "internal", "Something went wrong on our side; try again later."
}

// proofJSON is a proof as the API shows it (never its token).
type proofJSON struct {
	Purpose lifecycle.Purpose `json:"purpose"`
	DNS     proofDNS          `json:"dns"`
	Mail    proofMail         `json:"mail"`
	Expires time.Time         `json:"expires"`
}

type proofDNS struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

type proofMail struct {
	To   string `json:"to"`
	Sent *bool  `json:"sent,omitempty"`
}

func proofOf(p lifecycle.Proof, sent *bool) proofJSON {
	return proofJSON{
		Purpose: p.Purpose,
		DNS:     proofDNS{Name: p.DNSName, Type: "TXT", Value: p.DNSValue},
		Mail:    proofMail{To: p.MailTo, Sent: sent},
		Expires: p.Expires.UTC(),
	}
}

// proofResponse answers a submission or a removal request (202).
type proofResponse struct {
	Domain    string    `json:"domain"`
	State     string    `json:"state"`
	StatusURL string    `json:"status_url"`
	Proof     proofJSON `json:"proof"`
}

// mailProof sends the proof's link to postmaster@ and reports whether it
// was queued. Only the normalised domain and values we made reach the
// mail; nothing the visitor typed does.
func (s *Server) mailProof(ctx context.Context, p lifecycle.Proof) bool {
	if s.c.Mailer == nil || p.Token == "" {
		return false
	}
	what, verb := "add", "adding"
	if p.Purpose == lifecycle.PurposeRemove {
		what, verb = "remove", "removing"
	}
	link := s.absURL("/domains/" + p.Domain + "/confirm?token=" + url.QueryEscape(p.Token))
	// What the button declares: a stranger may have chosen the patterns.
	declared := ""
	if p.Purpose == lifecycle.PurposeAdd {
		if mode, pats, ok := s.declared(ctx, p.Domain); ok {
			declared = "\nThe request asks for " + mode + " mode, with the MX patterns:\n\n  " + strings.Join(pats, "\n  ") +
				"\n\nConfirm only if these are your domain's mail servers.\n"
		}
	}
	body := fmt.Sprintf(`Someone asked to %[1]s %[2]s %[3]s the STARTTLS preload list at
%[4]s
%[10]s
If it was you (or your organisation), open this link and press the
button on the page it shows:

  %[5]s

Opening the link proves nothing by itself; only the button does. The link
works once, until %[6]s.

Instead of the link, you may publish this DNS record and press "Check the
DNS record now" on the domain's status page:

  %[7]s. TXT "%[8]s"

If it was not you, ignore this mail: nothing happens without the button
or the record.

Status of %[2]s: %[9]s
`, what, p.Domain, map[bool]string{true: "from", false: "to"}[what == "remove"], s.base.String(), link,
		p.Expires.UTC().Format(timeLayout), p.DNSName, p.DNSValue, s.absURL("/domains/"+p.Domain), declared)
	// RFC 2142 §2: postmaster@ reaches whoever runs the domain's mail.
	msg := notify.Message{
		To:      p.MailTo,
		Subject: "Confirm " + verb + " " + p.Domain + " (STARTTLS preload list)",
		Body:    body,
	}
	if err := s.c.Mailer.Enqueue(ctx, msg); err != nil {
		s.log.WarnContext(ctx, "ownership mail not queued", "domain", p.Domain, "err", err)
		return false
	}
	return true
}

// declared is what a pending domain's add proof would declare: the mode
// and the MX patterns (never the contact). ok is false when the domain
// cannot be read.
func (s *Server) declared(ctx context.Context, domain string) (mode string, patterns []string, ok bool) {
	d, err := s.c.Store.GetDomain(ctx, domain)
	if err != nil {
		return "", nil, false
	}
	mode = "testing"
	if d.WantEnforce {
		mode = "enforce"
	}
	patterns = d.MXPatterns
	if patterns == nil {
		patterns = []string{}
	}
	return mode, patterns, true
}
