package lab

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// Mode is how a fake MX behaves.
type Mode int

const (
	// ModeGood greets with 220, offers STARTTLS, completes TLS with the
	// certificate, and accepts mail after TLS (and in plain text if the
	// client never starts TLS). Without a certificate it does not offer
	// STARTTLS.
	ModeGood Mode = iota
	// ModeNoSTARTTLS does not advertise STARTTLS and refuses the command.
	ModeNoSTARTTLS
	// ModeTLS10Only offers STARTTLS but speaks TLS 1.0 only.
	ModeTLS10Only
	// ModeSTARTTLS454 advertises STARTTLS and answers the command with 454.
	ModeSTARTTLS454
	// ModeTarpit accepts connections and never greets.
	ModeTarpit
	// ModeEndlessBanner sends "220-" continuation lines forever.
	ModeEndlessBanner
	// ModeBadGreeting greets with 554 (no service).
	ModeBadGreeting
	// ModeEndlessLine sends a greeting line that never ends.
	ModeEndlessLine
	// ModeEHLOFailsAfterTLS completes TLS and then refuses EHLO with 554.
	ModeEHLOFailsAfterTLS
	// ModeTLSHandshakeFails answers STARTTLS with 220 and then sends garbage
	// instead of a TLS handshake.
	ModeTLSHandshakeFails
)

func (m Mode) String() string {
	switch m {
	case ModeGood:
		return "good"
	case ModeNoSTARTTLS:
		return "no-starttls"
	case ModeTLS10Only:
		return "tls10-only"
	case ModeSTARTTLS454:
		return "starttls-454"
	case ModeTarpit:
		return "tarpit"
	case ModeEndlessBanner:
		return "endless-banner"
	case ModeBadGreeting:
		return "bad-greeting"
	case ModeEndlessLine:
		return "endless-line"
	case ModeEHLOFailsAfterTLS:
		return "ehlo-fails-after-tls"
	case ModeTLSHandshakeFails:
		return "tls-handshake-fails"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Message is a mail an MX received.
type Message struct {
	From string
	To   []string
	Data []byte
	TLS  bool // received after STARTTLS
}

// MX is a fake SMTP server on a loopback address.
type MX struct {
	ln   net.Listener
	mode Mode
	tls  *tls.Config

	mu    sync.Mutex
	msgs  []Message
	helos []string
	conns map[net.Conn]struct{}
	count int
	done  bool
	wg    sync.WaitGroup
}

// NewMX starts a fake MX on addr ("127.0.0.2:0" for any free port;
// "127.0.0.2:25" needs root) and stops it when the test ends. cert is the
// certificate (and chain) served after STARTTLS; it may be nil for modes
// that never reach TLS.
func NewMX(t testing.TB, addr string, mode Mode, cert *tls.Certificate) *MX {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("lab: mx: %v", err)
	}
	m := &MX{ln: ln, mode: mode, conns: map[net.Conn]struct{}{}}
	if cert != nil {
		m.tls = &tls.Config{Certificates: []tls.Certificate{*cert}}
		if mode == ModeTLS10Only {
			m.tls.MinVersion, m.tls.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
		}
	}
	m.wg.Add(1)
	go m.accept()
	t.Cleanup(m.Close)
	return m
}

// Addr returns the host:port the MX listens on.
func (m *MX) Addr() string { return m.ln.Addr().String() }

// Messages returns the mails received so far.
func (m *MX) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

// HELOs returns the names clients gave in EHLO, in order.
func (m *MX) HELOs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.helos...)
}

// Count returns how many connections the MX has accepted.
func (m *MX) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}

// Close stops the MX and closes open connections.
func (m *MX) Close() {
	m.mu.Lock()
	if m.done {
		m.mu.Unlock()
		return
	}
	m.done = true
	m.ln.Close()
	for c := range m.conns {
		c.Close()
	}
	m.mu.Unlock()
	m.wg.Wait()
}

func (m *MX) accept() {
	defer m.wg.Done()
	for {
		c, err := m.ln.Accept()
		if err != nil {
			return
		}
		m.mu.Lock()
		if m.done {
			m.mu.Unlock()
			c.Close()
			return
		}
		m.conns[c] = struct{}{}
		m.count++
		m.wg.Add(1)
		m.mu.Unlock()
		go func() {
			defer m.wg.Done()
			m.serve(c)
			m.mu.Lock()
			delete(m.conns, c)
			m.mu.Unlock()
			c.Close()
		}()
	}
}

// session is one SMTP connection; reads are bounded like a real server's.
type session struct {
	m     *MX
	c     net.Conn
	r     *bufio.Reader
	tls   bool
	from  string
	to    []string
	ehloN int
}

func (s *session) reply(lines ...string) error {
	_, err := io.WriteString(s.c, strings.Join(lines, "\r\n")+"\r\n")
	return err
}

var errLineTooLong = errors.New("line too long")

func (s *session) readLine() (string, error) {
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

func (m *MX) serve(c net.Conn) {
	s := &session{m: m, c: c, r: bufio.NewReaderSize(c, 4096)}
	switch m.mode {
	case ModeTarpit:
		io.Copy(io.Discard, c) // until the client or Close ends it
		return
	case ModeEndlessBanner:
		for {
			if _, err := io.WriteString(c, "220-mx.lab.test ESMTP welcome, please wait\r\n"); err != nil {
				return
			}
		}
	case ModeEndlessLine:
		if _, err := io.WriteString(c, "220 "); err != nil {
			return
		}
		chunk := bytes.Repeat([]byte("x"), 1024)
		for {
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	case ModeBadGreeting:
		if s.reply("554 5.3.2 mx.lab.test no service here") != nil {
			return
		}
	default:
		if s.reply("220 mx.lab.test ESMTP lab") != nil {
			return
		}
	}
	for {
		line, err := s.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				s.reply("500 5.5.2 line too long")
			}
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			s.ehloN++
			m.mu.Lock()
			m.helos = append(m.helos, arg)
			m.mu.Unlock()
			if m.mode == ModeBadGreeting {
				err = s.reply("554 5.3.2 no service")
				break
			}
			if s.tls && m.mode == ModeEHLOFailsAfterTLS {
				err = s.reply("554 5.7.0 go away")
				break
			}
			lines := []string{"250-mx.lab.test greets " + arg, "250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME"}
			if !s.tls && m.offersSTARTTLS() {
				lines = append(lines, "250-STARTTLS")
			}
			lines = append(lines, "250 ENHANCEDSTATUSCODES")
			err = s.reply(lines...)
		case "HELO":
			err = s.reply("250 mx.lab.test")
		case "STARTTLS":
			switch {
			case s.tls:
				err = s.reply("503 5.5.1 TLS already active")
			case !m.offersSTARTTLS():
				err = s.reply("502 5.5.1 command not implemented")
			case m.mode == ModeSTARTTLS454:
				err = s.reply("454 4.7.0 TLS not available due to local problem")
			case m.mode == ModeTLSHandshakeFails:
				s.reply("220 2.0.0 ready to start TLS")
				buf := make([]byte, 512)
				if _, err := c.Read(buf); err != nil { // the ClientHello
					return
				}
				io.WriteString(c, "this is not TLS\r\n")
				return
			default:
				if err = s.reply("220 2.0.0 ready to start TLS"); err != nil {
					return
				}
				tc := tls.Server(c, m.tls)
				if err := tc.Handshake(); err != nil {
					return
				}
				m.mu.Lock()
				m.conns[tc] = struct{}{}
				m.mu.Unlock()
				defer func() {
					m.mu.Lock()
					delete(m.conns, tc)
					m.mu.Unlock()
				}()
				s.c, s.r, s.tls = tc, bufio.NewReaderSize(tc, 4096), true
				s.from, s.to = "", nil
			}
		case "MAIL":
			s.from, s.to = trimPath(arg, "FROM:"), nil
			err = s.reply("250 2.1.0 ok")
		case "RCPT":
			if s.from == "" {
				err = s.reply("503 5.5.1 need MAIL first")
				break
			}
			s.to = append(s.to, trimPath(arg, "TO:"))
			err = s.reply("250 2.1.5 ok")
		case "DATA":
			if len(s.to) == 0 {
				err = s.reply("503 5.5.1 need RCPT first")
				break
			}
			if err = s.reply("354 end data with <CR><LF>.<CR><LF>"); err != nil {
				return
			}
			data, derr := s.readData()
			if derr != nil {
				return
			}
			m.mu.Lock()
			m.msgs = append(m.msgs, Message{From: s.from, To: s.to, Data: data, TLS: s.tls})
			m.mu.Unlock()
			s.from, s.to = "", nil
			err = s.reply("250 2.0.0 queued")
		case "RSET":
			s.from, s.to = "", nil
			err = s.reply("250 2.0.0 ok")
		case "NOOP":
			err = s.reply("250 2.0.0 ok")
		case "QUIT":
			s.reply("221 2.0.0 bye")
			return
		default:
			err = s.reply("502 5.5.2 command not recognised")
		}
		if err != nil {
			return
		}
	}
}

// offersSTARTTLS reports whether EHLO lists STARTTLS: not in
// ModeNoSTARTTLS, and not without a certificate unless the mode never
// completes a handshake anyway.
func (m *MX) offersSTARTTLS() bool {
	switch m.mode {
	case ModeNoSTARTTLS:
		return false
	case ModeSTARTTLS454, ModeTLSHandshakeFails:
		return true
	}
	return m.tls != nil
}

const maxMessage = 10 << 20

func (s *session) readData() ([]byte, error) {
	var buf bytes.Buffer
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "." {
			return buf.Bytes(), nil
		}
		line = strings.TrimPrefix(line, ".") // RFC 5321 §4.5.2 dot-stuffing
		if buf.Len()+len(line) > maxMessage {
			return nil, errors.New("message too large")
		}
		buf.WriteString(line)
		buf.WriteString("\r\n")
	}
}

func trimPath(arg, prefix string) string {
	if len(arg) >= len(prefix) && strings.EqualFold(arg[:len(prefix)], prefix) {
		arg = arg[len(prefix):]
	}
	arg = strings.TrimSpace(arg)
	if i := strings.IndexByte(arg, ' '); i >= 0 {
		arg = arg[:i] // drop ESMTP parameters
	}
	return strings.Trim(arg, "<>")
}
