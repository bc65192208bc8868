package admission

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/notify"
)

// Mailer queues mail; *notify.Mailer is one.
type Mailer interface {
	Enqueue(ctx context.Context, msg notify.Message) error
}

var _ Mailer = (*notify.Mailer)(nil)

// MailNotifier mails each notice to the domain's contact through a Mailer
// (notify.Mailer: one bounded queue, one relay). Notify only queues the
// notice, so a slow or refusing relay never holds up a round. A domain
// without a contact is skipped, a notice the queue has no room for is
// dropped, and one that cannot be mailed (a contact that is not a plain
// address) is counted as failed: none of them is an error for the round,
// all are logged and counted in Metrics.
type MailNotifier struct {
	Mailer  Mailer
	Metrics *Metrics
	Log     *slog.Logger
	// Now dates notices that carry no time; nil: time.Now.
	Now func() time.Time
}

// Notify queues the notice for the contact. Only a closed mailer is an
// error (notify.ErrClosed).
func (m *MailNotifier) Notify(ctx context.Context, contact string, n Notice) error {
	log := m.Log
	if log == nil {
		log = slog.Default()
	}
	if contact == "" {
		log.InfoContext(ctx, "notice not mailed: no contact", "domain", n.Domain, "code", n.Code)
		m.Metrics.notice(NoticeSkipped)
		return nil
	}
	msg, err := m.message(contact, n)
	if err == nil {
		msg.Done = func(err error) {
			if err != nil {
				m.Metrics.notice(NoticeFailed)
				return
			}
			m.Metrics.notice(NoticeSent)
		}
		err = m.Mailer.Enqueue(ctx, msg)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, notify.ErrClosed):
		m.Metrics.notice(NoticeDropped)
		return err
	case errors.Is(err, notify.ErrQueueFull):
		log.WarnContext(ctx, "notice dropped: mail queue full", "domain", n.Domain, "contact", contact, "code", n.Code)
		m.Metrics.notice(NoticeDropped)
		return nil
	default:
		log.WarnContext(ctx, "notice not mailed", "domain", n.Domain, "contact", contact, "code", n.Code, "err", err)
		m.Metrics.notice(NoticeFailed)
		return nil
	}
}

// message is the mail a notice becomes. Fields that would reach the
// header (contact, domain, codes) are refused when they hold a line break
// or control character.
func (m *MailNotifier) message(contact string, n Notice) (notify.Message, error) {
	for _, s := range append([]string{n.Domain, n.Code}, n.Codes...) {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return notify.Message{}, notify.ErrHeaderInjection
		}
	}
	at := n.At
	if at.IsZero() {
		if m.Now != nil {
			at = m.Now()
		} else {
			at = time.Now()
		}
	}
	msg := NoticeMessage(contact, n, at)
	return msg, msg.Check()
}

// NoticeMessage is the mail that tells contact about n (which happened at
// at): what happened, what failed, what comes next and how to fix it.
func NoticeMessage(contact string, n Notice, at time.Time) notify.Message {
	return notify.Message{To: contact, Subject: subjectOf(n), Body: bodyOf(n, at)}
}

func subjectOf(n Notice) string {
	switch n.Code {
	case CodeCheckFailed:
		return fmt.Sprintf("STARTTLS preload: %s failed a check", n.Domain)
	case CodeMXMismatch:
		return fmt.Sprintf("STARTTLS preload: %s demoted, an MX is outside its patterns", n.Domain)
	case CodeFailure:
		return fmt.Sprintf("STARTTLS preload: %s demoted after failing checks", n.Domain)
	case CodeStale:
		return fmt.Sprintf("STARTTLS preload: %s removed from the list", n.Domain)
	}
	return fmt.Sprintf("STARTTLS preload: notice for %s (%s)", n.Domain, n.Code)
}

func bodyOf(n Notice, at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", n.Message)
	fmt.Fprintf(&b, "When: %s\n", at.UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Notice: %s\n", n.Code)
	if len(n.Codes) > 0 {
		b.WriteString("\nWhat failed (finding codes):\n")
		for i, c := range n.Codes {
			if i < len(n.Summaries) && n.Summaries[i] != "" {
				fmt.Fprintf(&b, "  - %s: %s\n", c, n.Summaries[i])
			} else {
				fmt.Fprintf(&b, "  - %s\n", c)
			}
		}
	}
	b.WriteString("\nWhat happens next:\n")
	switch n.Code {
	case CodeCheckFailed:
		b.WriteString("  The domain is checked again on the listed interval. If the failure\n" +
			"  persists for the grace period, the domain is demoted to testing in the\n" +
			"  next list: senders will stop requiring TLS for it.\n")
	case CodeMXMismatch:
		b.WriteString("  The domain is listed as testing from the next list on. It must declare\n" +
			"  MX patterns that cover its current MX hosts before it can be enforced again.\n")
	case CodeStale:
		b.WriteString("  The domain is not in the next list. Once it passes its checks again,\n" +
			"  submit it again: it is admitted after the usual period of passing checks.\n")
	default:
		b.WriteString("  The domain is listed as testing from the next list on and must pass its\n" +
			"  checks again before it is enforced.\n")
	}
	b.WriteString("\nHow to fix it:\n" +
		"  Make every MX host offer STARTTLS with TLS 1.2 or later and a certificate\n" +
		"  that is valid, unexpired, chains to a public root and names the MX host,\n" +
		"  and keep the MX hosts within the declared patterns. The finding codes\n" +
		"  above are explained by `starttls-preload check " + n.Domain + "`.\n")
	return b.String()
}

// Notifiers sends each notice to every notifier in turn and joins their
// errors.
type Notifiers []Notifier

// Notify calls every notifier.
func (ns Notifiers) Notify(ctx context.Context, contact string, n Notice) error {
	var errs []error
	for _, x := range ns {
		errs = append(errs, x.Notify(ctx, contact, n))
	}
	return errors.Join(errs...)
}
