package admission

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"
)

// Errors of the mail notifier.
var (
	ErrHeaderInjection = errors.New("admission: notice field contains a line break or control character")
	ErrQueueFull       = errors.New("admission: notice queue full")
	ErrReplyTooLong    = errors.New("admission: relay replies exceed the read limit")
	ErrNotifierClosed  = errors.New("admission: notifier closed")
)

// MailConfig configures a MailNotifier.
type MailConfig struct {
	Relay    string // host:port of the SMTP relay
	From     string // envelope and header sender
	StartTLS bool   // use STARTTLS when the relay offers it, verifying its certificate
	CAFile   string // roots for the relay's certificate (empty: system roots)
	Timeout  time.Duration
	Queue    int // notices waiting to be sent; further ones are dropped (default 256)
	Hostname string
	Dialer   Dialer // nil: net.Dialer
	Metrics  *Metrics
	Log      *slog.Logger
	Now      func() time.Time
}

// Mail reads from the relay are bounded: a relay that talks without end is
// cut off instead of filling memory.
const mailReadLimit = 64 << 10

// MailNotifier mails each notice to the domain's contact through an SMTP
// relay. Notify only queues the notice: one goroutine sends the queue in
// order, each send bounded by the timeout, so a slow or refusing relay never
// holds up a round. When the queue is full the notice is dropped with a
// warning. Close sends what is queued and stops.
type MailNotifier struct {
	cfg   MailConfig
	roots *x509.CertPool
	log   *slog.Logger
	queue chan queued
	done  chan struct{}

	mu     sync.Mutex
	closed bool
}

type queued struct {
	contact string
	n       Notice
}

// NewMailNotifier checks cfg and starts the sender.
func NewMailNotifier(cfg MailConfig) (*MailNotifier, error) {
	if _, _, err := net.SplitHostPort(cfg.Relay); err != nil {
		return nil, fmt.Errorf("admission: notify relay %q: %w", cfg.Relay, err)
	}
	if strings.ContainsAny(cfg.From, "\r\n") {
		return nil, fmt.Errorf("%w: from", ErrHeaderInjection)
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("admission: notify from %q: %w", cfg.From, err)
	}
	m := &MailNotifier{cfg: cfg, log: cfg.Log}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("admission: notify ca file: %w", err)
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admission: notify ca file %s: no certificates", cfg.CAFile)
		}
	}
	if m.cfg.Timeout <= 0 {
		m.cfg.Timeout = 30 * time.Second
	}
	if m.cfg.Queue <= 0 {
		m.cfg.Queue = 256
	}
	if m.cfg.Hostname == "" {
		m.cfg.Hostname = "localhost"
	}
	if m.cfg.Now == nil {
		m.cfg.Now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	m.queue = make(chan queued, m.cfg.Queue)
	m.done = make(chan struct{})
	go m.run()
	return m, nil
}

// Notify queues the notice. A domain without a contact is skipped; a full
// queue drops the notice. Neither is an error for the round: both are
// logged and counted.
func (m *MailNotifier) Notify(ctx context.Context, contact string, n Notice) error {
	if contact == "" {
		m.log.InfoContext(ctx, "notice not mailed: no contact", "domain", n.Domain, "code", n.Code)
		m.cfg.Metrics.notice(NoticeSkipped)
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		m.cfg.Metrics.notice(NoticeDropped)
		return ErrNotifierClosed
	}
	select {
	case m.queue <- queued{contact, n}:
		return nil
	default:
		m.log.WarnContext(ctx, "notice dropped: mail queue full", "domain", n.Domain, "contact", contact, "code", n.Code)
		m.cfg.Metrics.notice(NoticeDropped)
		return nil
	}
}

// Close sends the notices still queued (each within the timeout) and stops
// the sender.
func (m *MailNotifier) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.done
	return nil
}

func (m *MailNotifier) run() {
	defer close(m.done)
	for q := range m.queue {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.Timeout)
		err := m.Send(ctx, q.contact, q.n)
		cancel()
		if err != nil {
			m.log.Warn("notice not mailed", "domain", q.n.Domain, "contact", q.contact, "code", q.n.Code, "err", err)
			m.cfg.Metrics.notice(NoticeFailed)
			continue
		}
		m.log.Info("notice mailed", "domain", q.n.Domain, "contact", q.contact, "code", q.n.Code)
		m.cfg.Metrics.notice(NoticeSent)
	}
}

// Send mails one notice now, within ctx and the configured timeout.
func (m *MailNotifier) Send(ctx context.Context, contact string, n Notice) error {
	msg, err := m.compose(contact, n)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	var d Dialer = &net.Dialer{}
	if m.cfg.Dialer != nil {
		d = m.cfg.Dialer
	}
	conn, err := d.DialContext(ctx, "tcp", m.cfg.Relay)
	if err != nil {
		return fmt.Errorf("admission: relay %s: %w", m.cfg.Relay, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Cancelling ctx ends the exchange too.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	lc := &limitConn{Conn: conn, left: mailReadLimit}
	err = m.exchange(lc, contact, msg)
	conn.Close()
	switch {
	case err != nil && lc.left <= 0:
		err = ErrReplyTooLong
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's deadline is the context's and may fire first.
		err = fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	if err != nil {
		return fmt.Errorf("admission: relay %s: %w", m.cfg.Relay, err)
	}
	return nil
}

func (m *MailNotifier) exchange(conn net.Conn, contact string, msg []byte) error {
	host, _, _ := net.SplitHostPort(m.cfg.Relay)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	if err := c.Hello(m.cfg.Hostname); err != nil {
		return err
	}
	if ok, _ := c.Extension("STARTTLS"); ok && m.cfg.StartTLS {
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: m.roots, MinVersion: tls.VersionTLS12}); err != nil {
			return err
		}
	}
	from, _ := mail.ParseAddress(m.cfg.From)
	if err := c.Mail(from.Address); err != nil {
		return err
	}
	if err := c.Rcpt(contact); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// compose builds the message, refusing any field that could add a header.
func (m *MailNotifier) compose(contact string, n Notice) ([]byte, error) {
	for _, s := range append([]string{contact, n.Domain, n.Code}, n.Codes...) {
		if strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return nil, ErrHeaderInjection
		}
	}
	to, err := mail.ParseAddress(contact)
	if err != nil || to.Address != contact {
		return nil, fmt.Errorf("admission: contact %q is not a plain address", contact)
	}
	now := m.cfg.Now()
	at := n.At
	if at.IsZero() {
		at = now
	}
	var id [12]byte
	rand.Read(id[:])
	_, fromDomain, _ := strings.Cut(mustAddress(m.cfg.From), "@")
	if fromDomain == "" {
		fromDomain = m.cfg.Hostname
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", m.cfg.From)
	hdr("To", contact)
	hdr("Subject", subjectOf(n))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+fromDomain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := bodyOf(n, at)
	body = strings.ReplaceAll(body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes(), nil
}

func mustAddress(s string) string {
	a, err := mail.ParseAddress(s)
	if err != nil {
		return ""
	}
	return a.Address
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

// limitConn fails reads once left bytes have been read.
type limitConn struct {
	net.Conn
	left int
}

func (c *limitConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrReplyTooLong
	}
	if len(p) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= n
	return n, err
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
