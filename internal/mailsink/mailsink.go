// Package mailsink is an SMTP server for tests (github.com/emersion/go-smtp)
// on 127.0.0.1 that accepts every message and keeps it, so a test can point
// notify.smtp_relay at it and read the mail the service sent.
package mailsink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// maxMessage bounds a message the sink keeps.
const maxMessage = 1 << 20

// Message is one message received.
type Message struct {
	From string   // MAIL FROM
	To   []string // RCPT TO
	Data []byte   // header and body, as sent
}

// Header parses the message's header.
func (m Message) Header() (mail.Header, error) {
	msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
	if err != nil {
		return nil, err
	}
	return msg.Header, nil
}

// Body returns the message's body (after the header).
func (m Message) Body() string {
	s := strings.ReplaceAll(string(m.Data), "\r\n", "\n")
	if _, body, ok := strings.Cut(s, "\n\n"); ok {
		return body
	}
	return ""
}

// Sink is the server.
type Sink struct {
	srv  *smtp.Server
	addr string

	mu      sync.Mutex
	msgs    []Message
	arrived chan struct{} // closed and replaced when a message arrives
}

// New starts a sink on 127.0.0.1 and stops it when the test ends.
func New(t testing.TB) *Sink {
	t.Helper()
	s := &Sink{arrived: make(chan struct{})}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	srv.Domain = "sink.lab.test"
	srv.MaxMessageBytes = maxMessage
	srv.MaxRecipients = 50
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailsink: %v", err)
	}
	s.srv, s.addr = srv, ln.Addr().String()
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

// Addr is the sink's host:port.
func (s *Sink) Addr() string { return s.addr }

// Messages returns the messages received so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// ErrNoMessage: Wait's context ended before a matching message came.
var ErrNoMessage = errors.New("mailsink: no matching message")

// Wait returns the first message (received before or after the call)
// with a recipient equal to rcpt (case-insensitive) and the skip-th such
// message when skip > 0, waiting for it until ctx ends.
func (s *Sink) Wait(ctx context.Context, rcpt string, skip int) (Message, error) {
	for {
		s.mu.Lock()
		seen := 0
		for _, m := range s.msgs {
			for _, to := range m.To {
				if strings.EqualFold(to, rcpt) {
					if seen == skip {
						s.mu.Unlock()
						return m, nil
					}
					seen++
					break
				}
			}
		}
		arrived := s.arrived
		s.mu.Unlock()
		select {
		case <-arrived:
		case <-ctx.Done():
			return Message{}, fmt.Errorf("%w for %s: %v", ErrNoMessage, rcpt, ctx.Err())
		}
	}
}

func (s *Sink) add(m Message) {
	s.mu.Lock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()
}

type session struct {
	sink *Sink
	msg  Message
}

func (ss *session) Reset()        { ss.msg = Message{} }
func (ss *session) Logout() error { return nil }

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	ss.msg.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.msg.To = append(ss.msg.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxMessage+1))
	if err != nil {
		return err
	}
	if len(b) > maxMessage {
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "message too big"}
	}
	m := ss.msg
	m.Data = b
	m.To = append([]string(nil), m.To...)
	ss.sink.add(m)
	return nil
}
