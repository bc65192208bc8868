// Package notify mails people: the failure notices of the admission
// scheduler and the ownership-proof links of the web door go through one
// Mailer, with one bounded queue and one relay configuration (notify.*).
//
// A Message is a recipient, a subject and a plain-text body. Enqueue only
// queues it: one goroutine sends the queue in order through the relay, each
// send bounded by the timeout, so a slow or refusing relay never holds up a
// round or a web request. When the queue is full the message is refused
// with ErrQueueFull. Nothing a caller passes reaches the message's header
// unchecked: a recipient must be one plain address and a subject one line,
// or the message is refused with ErrHeaderInjection.
//
// The message is RFC 5322: From, To, Subject (RFC 2047 encoded when not
// ASCII), Date, Message-ID, MIME-Version, a text/plain UTF-8 body with CRLF
// line ends, and Auto-Submitted: auto-generated (RFC 3834 §5) so that
// responders do not answer it.
//
// The package is a leaf: it imports nothing else of this module.
package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Errors of the mailer.
var (
	ErrHeaderInjection = errors.New("notify: header field contains a line break or control character")
	ErrAddress         = errors.New("notify: recipient is not one plain address")
	ErrTooLarge        = errors.New("notify: message too large")
	ErrQueueFull       = errors.New("notify: mail queue full")
	ErrReplyTooLong    = errors.New("notify: relay replies exceed the read limit")
	ErrClosed          = errors.New("notify: mailer closed")
	ErrConfig          = errors.New("notify: bad configuration")
)

// Bounds of what is sent and read.
const (
	// MaxSubject bounds a subject, in bytes.
	MaxSubject = 256
	// MaxBody bounds a body, in bytes.
	MaxBody = 64 << 10
	// readLimit bounds what is read from the relay in one send: a relay
	// that talks without end is cut off instead of filling memory.
	readLimit = 64 << 10
	maxLine   = 998
)

// Dialer opens connections to the relay; *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config configures a Mailer: the notify.* settings and what tests replace.
type Config struct {
	Relay    string        // host:port of the SMTP relay (notify.smtp_relay)
	From     string        // header sender, e.g. "STARTTLS preload <noreply@example.org>"; its address is the envelope sender (notify.from)
	StartTLS bool          // use STARTTLS when the relay offers it, verifying its certificate (notify.starttls)
	CAFile   string        // roots for the relay's certificate; empty: the system's (notify.ca_file)
	Timeout  time.Duration // for one whole send (notify.timeout); 30 s by default
	Queue    int           // messages waiting to be sent; 256 by default
	Hostname string        // the name given in EHLO; "localhost" by default
	Dialer   Dialer        // nil: net.Dialer
	Log      *slog.Logger  // nil: slog.Default()
	Now      func() time.Time
}

// Message is one plain-text mail to one recipient.
type Message struct {
	To      string // one plain address ("postmaster@example.org"), no display name
	Subject string // one line, at most MaxSubject bytes
	Body    string // plain text, at most MaxBody bytes; line ends become CRLF

	// Done, when set, is called once the message was sent (nil) or could
	// not be (the error), from the sender goroutine. It is how a caller
	// counts deliveries; it is not part of the mail.
	Done func(err error)
}

// Check refuses a message whose fields could add a header or break the
// message: a recipient that is not one plain address, a subject with a line
// break or control character, a subject or body over its bound.
func (msg Message) Check() error {
	if hasControl(msg.To) || hasControl(msg.Subject) {
		return ErrHeaderInjection
	}
	if a, err := mail.ParseAddress(msg.To); err != nil || a.Address != msg.To || a.Name != "" {
		return fmt.Errorf("%w: %q", ErrAddress, msg.To)
	}
	if len(msg.Subject) > MaxSubject || len(msg.Body) > MaxBody {
		return ErrTooLarge
	}
	if !utf8.ValidString(msg.Subject) || !utf8.ValidString(msg.Body) {
		return fmt.Errorf("%w: not UTF-8", ErrHeaderInjection)
	}
	// RFC 5322 §2.1.1: a line is at most 998 characters.
	for line := range strings.Lines(msg.Body) {
		if len(strings.TrimRight(line, "\r\n")) > maxLine {
			return fmt.Errorf("%w: a body line is longer than %d bytes", ErrTooLarge, maxLine)
		}
	}
	return nil
}

// hasControl reports a C0 control character (CR and LF among them) or DEL.
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// Mailer sends messages through one relay from one bounded queue.
type Mailer struct {
	cfg   Config
	from  *mail.Address
	roots *x509.CertPool
	log   *slog.Logger
	queue chan Message
	done  chan struct{}

	mu     sync.Mutex
	closed bool
}

// New checks cfg and starts the sender. Errors wrap ErrConfig or
// ErrHeaderInjection.
func New(cfg Config) (*Mailer, error) {
	if _, _, err := net.SplitHostPort(cfg.Relay); err != nil {
		return nil, fmt.Errorf("%w: relay %q: %v", ErrConfig, cfg.Relay, err)
	}
	if hasControl(cfg.From) {
		return nil, fmt.Errorf("%w: from", ErrHeaderInjection)
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("%w: from %q: %v", ErrConfig, cfg.From, err)
	}
	m := &Mailer{cfg: cfg, from: from, log: cfg.Log}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: ca file: %v", ErrConfig, err)
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: ca file %s: no certificates", ErrConfig, cfg.CAFile)
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
	m.queue = make(chan Message, m.cfg.Queue)
	m.done = make(chan struct{})
	go m.run()
	return m, nil
}

// Enqueue checks the message (Message.Check) and queues it without
// waiting: ErrQueueFull when the queue is full, ErrClosed after Close.
func (m *Mailer) Enqueue(ctx context.Context, msg Message) error {
	if err := msg.Check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	select {
	case m.queue <- msg:
		return nil
	default:
		m.log.WarnContext(ctx, "mail dropped: queue full", "to", msg.To, "subject", msg.Subject)
		return ErrQueueFull
	}
}

// Close sends the messages still queued (each within the timeout) and
// stops the sender.
func (m *Mailer) Close() error {
	m.mu.Lock()
	if !m.closed {
		m.closed = true
		close(m.queue)
	}
	m.mu.Unlock()
	<-m.done
	return nil
}

func (m *Mailer) run() {
	defer close(m.done)
	for msg := range m.queue {
		err := m.Send(context.Background(), msg)
		if err != nil {
			m.log.Warn("mail not sent", "to", msg.To, "subject", msg.Subject, "err", err)
		} else {
			m.log.Info("mail sent", "to", msg.To, "subject", msg.Subject)
		}
		if msg.Done != nil {
			msg.Done(err)
		}
	}
}

// Send mails one message now, within ctx and the configured timeout. It
// does not call msg.Done.
func (m *Mailer) Send(ctx context.Context, msg Message) error {
	raw, err := m.Compose(msg)
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
		return fmt.Errorf("notify: relay %s: %w", m.cfg.Relay, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	// Cancelling ctx ends the exchange too.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	lc := &limitConn{Conn: conn, left: readLimit}
	err = m.exchange(lc, msg.To, raw)
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
		return fmt.Errorf("notify: relay %s: %w", m.cfg.Relay, err)
	}
	return nil
}

func (m *Mailer) exchange(conn net.Conn, to string, raw []byte) error {
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
	if err := c.Mail(m.from.Address); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	// The DATA writer dot-stuffs lines (RFC 5321 §4.5.2).
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// Compose returns the message as sent: an RFC 5322 header and the body
// with CRLF line ends. It refuses what Message.Check refuses.
func (m *Mailer) Compose(msg Message) ([]byte, error) {
	if err := msg.Check(); err != nil {
		return nil, err
	}
	var id [16]byte
	rand.Read(id[:])
	_, fromDomain, _ := strings.Cut(m.from.Address, "@")
	if fromDomain == "" {
		fromDomain = m.cfg.Hostname
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", m.from.String())
	hdr("To", msg.To)
	hdr("Subject", encodeSubject(msg.Subject))
	// RFC 5322 §3.3: date-time, e.g. "Mon, 23 Nov 2026 08:00:00 +0000".
	hdr("Date", m.cfg.Now().Format(time.RFC1123Z))
	// RFC 5322 §3.6.4: msg-id = "<" id-left "@" id-right ">".
	hdr("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+fromDomain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "8bit")
	// RFC 3834 §5: machine-made, not to be answered automatically.
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	body := strings.ReplaceAll(msg.Body, "\r\n", "\n")
	body = strings.ReplaceAll(body, "\r", "\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n"))
	return b.Bytes(), nil
}

// encodeSubject returns the subject as header text: trimmed, and as RFC
// 2047 encoded-words when it is not ASCII or holds "=?", so that text a
// visitor typed is shown as typed and never decoded as an encoded-word
// of its own.
func encodeSubject(s string) string {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "=?") {
		// RFC 2047 §5: a subject that is not ASCII is an encoded-word.
		return mime.QEncoding.Encode("utf-8", s)
	}
	// RFC 2047 §2: an encoded-word is at most 75 characters; 45 bytes
	// are 60 in base64, cut at character boundaries.
	var words []string
	for len(s) > 0 {
		n := min(len(s), 45)
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		words = append(words, "=?utf-8?b?"+base64.StdEncoding.EncodeToString([]byte(s[:n]))+"?=")
		s = s[n:]
	}
	return strings.Join(words, " ")
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
