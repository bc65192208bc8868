package validate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// ErrNoResolver means no DNS server is configured and /etc/resolv.conf
// names none.
var ErrNoResolver = errors.New("validate: no DNS resolver configured")

// resolver asks one or more recursive resolvers, over UDP with TCP on
// truncation. A lost UDP answer is retried quickly and then with back-off,
// within the step timeout.
type resolver struct {
	servers []string
	timeout time.Duration
	tcp     *dns.Client
	idle    map[string]chan *udpConn // per server: UDP sockets kept for reuse
}

// udpSize is the EDNS0 UDP payload size asked for (the DNS flag day 2020
// value), and the size of the buffer answers are read into.
const udpSize = 1232

// idleUDP is how many UDP sockets per server are kept for reuse. Reuse
// saves a socket, a connect and a close per query; replies to earlier,
// timed-out queries are told apart by their message ID.
const idleUDP = 256

// udpConn is a UDP socket connected to one server, with the buffer its
// queries are packed into and its answers read into.
type udpConn struct {
	c   net.Conn
	buf []byte
}

func newResolver(server string, timeout time.Duration) (*resolver, error) {
	r := &resolver{
		timeout: timeout,
		tcp:     &dns.Client{Net: "tcp"},
	}
	if server != "" {
		if _, _, err := net.SplitHostPort(server); err != nil {
			server = net.JoinHostPort(server, "53")
		}
		r.servers = []string{server}
		r.initIdle()
		return r, nil
	}
	conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoResolver, err)
	}
	for _, s := range conf.Servers {
		r.servers = append(r.servers, net.JoinHostPort(s, conf.Port))
	}
	if len(r.servers) == 0 {
		return nil, ErrNoResolver
	}
	r.initIdle()
	return r, nil
}

func (r *resolver) initIdle() {
	r.idle = make(map[string]chan *udpConn, len(r.servers))
	for _, s := range r.servers {
		r.idle[s] = make(chan *udpConn, idleUDP)
	}
}

var udpDialer net.Dialer

// exchangeUDP sends m to server over a reused or new UDP socket and reads
// the answer that carries m's ID until deadline. Answers with another ID
// (to earlier queries that timed out) are skipped.
func (r *resolver) exchangeUDP(ctx context.Context, m *dns.Msg, server string, deadline time.Time) (*dns.Msg, error) {
	var uc *udpConn
	select {
	case uc = <-r.idle[server]:
	default:
		dctx, cancel := context.WithDeadline(ctx, deadline)
		c, err := udpDialer.DialContext(dctx, "udp", server)
		cancel()
		if err != nil {
			return nil, err
		}
		uc = &udpConn{c: c, buf: make([]byte, udpSize)}
	}
	resp, err := uc.exchange(m, deadline)
	if err == nil && (len(resp.Question) != 1 || !strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) ||
		resp.Question[0].Qtype != m.Question[0].Qtype) {
		err = errQuestionMismatch
	}
	if err != nil {
		uc.c.Close()
		return nil, err
	}
	select {
	case r.idle[server] <- uc:
	default:
		uc.c.Close()
	}
	return resp, nil
}

func (uc *udpConn) exchange(m *dns.Msg, deadline time.Time) (*dns.Msg, error) {
	if err := uc.c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	out, err := m.PackBuffer(uc.buf)
	if err != nil {
		return nil, err
	}
	if _, err := uc.c.Write(out); err != nil {
		return nil, err
	}
	for {
		n, err := uc.c.Read(uc.buf)
		if err != nil {
			return nil, err
		}
		if n < 12 {
			return nil, dns.ErrShortRead
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(uc.buf[:n]); err != nil {
			return nil, err
		}
		if resp.Id == m.Id {
			return resp, nil
		}
	}
}

var errQuestionMismatch = errors.New("validate: DNS answer is for another question")

// lookupError is a failed DNS exchange (timeout, network error or a
// response code other than NOERROR/NXDOMAIN).
type lookupError struct {
	Name  string
	Type  string
	Rcode int // -1 when no answer came
	Err   error
}

func (e *lookupError) Error() string {
	if e.Rcode >= 0 {
		return fmt.Sprintf("%s %s: %s", e.Type, e.Name, dns.RcodeToString[e.Rcode])
	}
	return fmt.Sprintf("%s %s: %v", e.Type, e.Name, e.Err)
}

func (e *lookupError) Unwrap() error { return e.Err }

// answer is a DNS response reduced to what the checks need.
type answer struct {
	rrs      []dns.RR // the answer section
	nxdomain bool
	ad       bool // DNSSEC-authenticated by the resolver
}

// query asks for (name, qtype). NOERROR and NXDOMAIN are answers; anything
// else is a *lookupError. The caller's context cancels it.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true // RFC 6840 §5.7: ask for the AD bit without DO
	m.SetEdns0(udpSize, false)

	// The step's deadline is set on each socket rather than through a
	// context of its own: the caller's context still cancels between
	// attempts, and bounds each attempt by its deadline.
	qdeadline := time.Now().Add(r.timeout)
	if d, ok := ctx.Deadline(); ok {
		qdeadline = earliest(qdeadline, d)
	}
	lerr := &lookupError{Name: strings.TrimSuffix(name, "."), Type: dns.TypeToString[qtype], Rcode: -1}
	attempt := 200 * time.Millisecond
	var resp *dns.Msg
	for i := 0; ; i++ {
		server := r.servers[i%len(r.servers)]
		var err error
		if err = ctx.Err(); err == nil {
			resp, err = r.exchangeUDP(ctx, m, server, earliest(time.Now().Add(attempt), qdeadline))
		}
		if err == nil && resp.Truncated {
			tctx, cancel := context.WithDeadline(ctx, qdeadline)
			resp, _, err = r.tcp.ExchangeContext(tctx, m, server)
			cancel()
		}
		if err == nil {
			break
		}
		if ctx.Err() != nil || !time.Now().Before(qdeadline) {
			if parent := context.Cause(ctx); errors.Is(parent, context.Canceled) {
				return nil, parent
			}
			lerr.Err = fmt.Errorf("no answer within %v: %w", r.timeout, err)
			return nil, lerr
		}
		// Retry quickly, then back off: one lost datagram on a quiet path
		// must not cost seconds.
		attempt = min(attempt*2, 2*time.Second)
		lerr.Err = err
		if !isTimeout(err) && i+1 >= 3*len(r.servers) {
			return nil, lerr
		}
	}
	switch resp.Rcode {
	case dns.RcodeSuccess, dns.RcodeNameError:
	default:
		lerr.Rcode = resp.Rcode
		return nil, lerr
	}
	return &answer{rrs: resp.Answer, nxdomain: resp.Rcode == dns.RcodeNameError, ad: resp.AuthenticatedData}, nil
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded)
}
