package submit

import (
	"context"
	"io"
	"net"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/notify"
	"github.com/starttls-preload/starttls-preload/store"
)

// mailRecorder is a Mailer that keeps what it is given.
type mailRecorder struct {
	mu   sync.Mutex
	msgs []notify.Message
}

func (m *mailRecorder) Enqueue(ctx context.Context, msg notify.Message) error {
	if err := msg.Check(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.msgs = append(m.msgs, msg)
	return nil
}

func (m *mailRecorder) all() []notify.Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]notify.Message(nil), m.msgs...)
}

// staticTXT answers TXT look-ups from a map.
type staticTXT struct {
	mu  sync.Mutex
	txt map[string][]string
}

func (s *staticTXT) LookupTXT(ctx context.Context, name string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.txt[name], nil
}

// withLifecycle gives the door the real lifecycle over the test store,
// with txt for DNS proofs and mailer for the mailed links.
func withLifecycle(txt lifecycle.TXTLookup, mailer Mailer) envOption {
	return func(c *Config) {
		c.Lifecycle = &lifecycle.Lifecycle{Store: c.Store, TXT: txt, Now: c.Now}
		c.Mailer = mailer
	}
}

var linkRE = regexp.MustCompile(`https://lists\.example\.org(/domains/[^/\s]+/confirm\?token=[a-z0-9]+)`)

// tokenLink returns the path of the confirmation link of a mail body.
func tokenLink(t *testing.T, body string) string {
	t.Helper()
	m := linkRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no confirmation link in the mail:\n%s", body)
	}
	return m[1]
}

// stored reports everything the store holds: domains and, for each, its
// proofs and decisions (for "nothing stored" checks).
func stored(t *testing.T, st store.Store) (domains, proofs, decisions int) {
	t.Helper()
	ctx := context.Background()
	ds, err := st.ListDomains(ctx, store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		ps, err := st.Proofs(ctx, d.Name)
		if err != nil {
			t.Fatal(err)
		}
		decs, err := st.Decisions(ctx, d.Name)
		if err != nil {
			t.Fatal(err)
		}
		proofs += len(ps)
		decisions += len(decs)
	}
	return len(ds), proofs, decisions
}

// smtpSink is an SMTP server on 127.0.0.1 that hands every message it
// receives to a channel.
type smtpSink struct {
	addr string
	msgs chan sinkMsg
}

type sinkMsg struct {
	from string
	to   []string
	data []byte
}

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	k := &smtpSink{msgs: make(chan sinkMsg, 16)}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &sinkSession{k: k}, nil }))
	s.Domain = "sink.test"
	s.ReadTimeout = 10 * time.Second
	s.WriteTimeout = 10 * time.Second
	s.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return k
}

// next waits for the next message (the test's deadline bounds the wait).
func (k *smtpSink) next(t *testing.T) sinkMsg {
	t.Helper()
	select {
	case m := <-k.msgs:
		return m
	case <-t.Context().Done():
		t.Fatal("no mail arrived")
	}
	return sinkMsg{}
}

type sinkSession struct {
	k    *smtpSink
	from string
	to   []string
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return err
	}
	s.k.msgs <- sinkMsg{from: s.from, to: s.to, data: b}
	return nil
}
