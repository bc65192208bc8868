package validate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
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

	// For queryAll: the socket's batch interface, and messages with a
	// buffer each for the answers.
	batch batchConn
	rms   []ipv4.Message
}

// batchConn sends and receives several datagrams per system call
// (sendmmsg and recvmmsg where the system has them).
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// batchConn returns uc's batch interface, or nil when the socket is not
// one that x/net can batch on.
func (uc *udpConn) batchConn() batchConn {
	if uc.batch == nil {
		c, ok := uc.c.(*net.UDPConn)
		if !ok {
			return nil
		}
		if ra, ok := c.RemoteAddr().(*net.UDPAddr); ok && ra.IP.To4() == nil {
			uc.batch = ipv6.NewPacketConn(c)
		} else {
			uc.batch = ipv4.NewPacketConn(c)
		}
	}
	return uc.batch
}

// readMsgs returns n messages, each with a buffer of udpSize bytes.
func (uc *udpConn) readMsgs(n int) []ipv4.Message {
	for len(uc.rms) < n {
		uc.rms = append(uc.rms, ipv4.Message{Buffers: [][]byte{make([]byte, udpSize)}})
	}
	return uc.rms[:n]
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

// getUDP returns a reused or new UDP socket connected to server.
func (r *resolver) getUDP(ctx context.Context, server string, deadline time.Time) (*udpConn, error) {
	select {
	case uc := <-r.idle[server]:
		return uc, nil
	default:
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	c, err := udpDialer.DialContext(dctx, "udp", server)
	cancel()
	if err != nil {
		return nil, err
	}
	return &udpConn{c: c, buf: make([]byte, udpSize)}, nil
}

// putUDP keeps uc for reuse, or closes it when enough are kept.
func (r *resolver) putUDP(server string, uc *udpConn) {
	select {
	case r.idle[server] <- uc:
	default:
		uc.c.Close()
	}
}

// sameQuestion reports whether resp answers m's question.
func sameQuestion(resp, m *dns.Msg) bool {
	return len(resp.Question) == 1 && strings.EqualFold(resp.Question[0].Name, m.Question[0].Name) &&
		resp.Question[0].Qtype == m.Question[0].Qtype
}

// exchangeUDP sends m to server over a reused or new UDP socket and reads
// the answer that carries m's ID until deadline. Answers with another ID
// (to earlier queries that timed out) are skipped.
func (r *resolver) exchangeUDP(ctx context.Context, m *dns.Msg, server string, deadline time.Time) (*dns.Msg, error) {
	uc, err := r.getUDP(ctx, server, deadline)
	if err != nil {
		return nil, err
	}
	resp, err := uc.exchange(m, deadline)
	if err == nil && !sameQuestion(resp, m) {
		err = errQuestionMismatch
	}
	if err != nil {
		uc.c.Close()
		return nil, err
	}
	r.putUDP(server, uc)
	return resp, nil
}

// exchangeUDPAll sends every message in ms to server over one UDP socket
// and reads answers until each has one or deadline passes: the queries go
// out in one system call, and answers that have arrived are read in one.
// resps[i] is the answer to ms[i], nil when none came; answers with an
// unknown ID or to another question, and datagrams that do not parse, are
// skipped.
func (r *resolver) exchangeUDPAll(ctx context.Context, ms []*dns.Msg, server string, deadline time.Time) []*dns.Msg {
	resps := make([]*dns.Msg, len(ms))
	uc, err := r.getUDP(ctx, server, deadline)
	if err != nil {
		return resps
	}
	bc := uc.batchConn()
	if bc == nil || uc.c.SetDeadline(deadline) != nil {
		uc.c.Close()
		return resps
	}
	out := make([]ipv4.Message, len(ms))
	for i, m := range ms {
		b, err := m.Pack()
		if err != nil {
			uc.c.Close()
			return resps
		}
		out[i].Buffers = [][]byte{b}
	}
	for sent := 0; sent < len(out); {
		n, err := bc.WriteBatch(out[sent:], 0)
		if err != nil {
			uc.c.Close()
			return resps
		}
		sent += n
	}
	for got := 0; got < len(ms); {
		rms := uc.readMsgs(len(ms) - got)
		n, err := bc.ReadBatch(rms, 0)
		if err != nil {
			uc.c.Close()
			return resps
		}
		for _, rm := range rms[:n] {
			resp := new(dns.Msg)
			if rm.N < 12 || resp.Unpack(rm.Buffers[0][:rm.N]) != nil {
				continue
			}
			for i, m := range ms {
				if resps[i] == nil && resp.Id == m.Id && sameQuestion(resp, m) {
					resps[i] = resp
					got++
					break
				}
			}
		}
	}
	r.putUDP(server, uc)
	return resps
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

// newQuery returns the query message for (name, qtype).
func newQuery(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true // RFC 6840 §5.7: ask for the AD bit without DO
	m.SetEdns0(udpSize, false)
	return m
}

// firstAttempt is how long the first UDP attempt waits before retrying.
const firstAttempt = 200 * time.Millisecond

// deadline is when a look-up started now must end: the step timeout, or
// the caller's deadline if earlier.
func (r *resolver) deadline(ctx context.Context) time.Time {
	d := time.Now().Add(r.timeout)
	if cd, ok := ctx.Deadline(); ok {
		d = earliest(d, cd)
	}
	return d
}

// query asks for (name, qtype). NOERROR and NXDOMAIN are answers; anything
// else is a *lookupError. The caller's context cancels it.
func (r *resolver) query(ctx context.Context, name string, qtype uint16) (*answer, error) {
	return r.queryUntil(ctx, newQuery(name, qtype), r.deadline(ctx), 0, firstAttempt)
}

// question is one (name, type) to look up.
type question struct {
	name  string
	qtype uint16
}

// queryAll asks every question at once: one UDP socket, the queries sent
// back to back and the answers read as they come, which costs far fewer
// system calls and wake-ups than a socket and a round trip per question.
// A question whose answer is lost, truncated or wrong then goes the way of
// query (retries with back-off, TCP on truncation) within the same
// deadline. The results are by index, as query returns them.
func (r *resolver) queryAll(ctx context.Context, qs ...question) ([]*answer, []error) {
	answers, errs := make([]*answer, len(qs)), make([]error, len(qs))
	qdeadline := r.deadline(ctx)
	ms := make([]*dns.Msg, len(qs))
	for i, q := range qs {
		ms[i] = newQuery(q.name, q.qtype)
		for j := 0; j < i; j++ {
			if ms[j].Id == ms[i].Id { // IDs tell the answers apart
				ms[i].Id, j = dns.Id(), -1
			}
		}
	}
	var resps []*dns.Msg
	if ctx.Err() == nil {
		resps = r.exchangeUDPAll(ctx, ms, r.servers[0], earliest(time.Now().Add(firstAttempt), qdeadline))
	} else {
		resps = make([]*dns.Msg, len(qs))
	}
	var wg sync.WaitGroup
	for i, resp := range resps {
		if resp != nil && !resp.Truncated {
			answers[i], errs[i] = toAnswer(resp, newLookupError(ms[i]))
			continue
		}
		if resp != nil { // truncated: over TCP (RFC 7766)
			wg.Go(func() {
				lerr := newLookupError(ms[i])
				if resp, err := r.exchangeTCP(ctx, ms[i], r.servers[0], qdeadline); err != nil {
					lerr.Err = err
					errs[i] = lerr
				} else {
					answers[i], errs[i] = toAnswer(resp, lerr)
				}
			})
			continue
		}
		// The next server first, as a retry of query would.
		wg.Go(func() { answers[i], errs[i] = r.queryUntil(ctx, ms[i], qdeadline, 1, 2*firstAttempt) })
	}
	wg.Wait()
	return answers, errs
}

func newLookupError(m *dns.Msg) *lookupError {
	q := m.Question[0]
	return &lookupError{Name: strings.TrimSuffix(q.Name, "."), Type: dns.TypeToString[q.Qtype], Rcode: -1}
}

// queryUntil sends m until an answer comes or qdeadline passes: UDP
// attempts from server index first, the first one waiting attempt, then
// quickly and with back-off; TCP when an answer is truncated.
func (r *resolver) queryUntil(ctx context.Context, m *dns.Msg, qdeadline time.Time, first int, attempt time.Duration) (*answer, error) {
	// The step's deadline is set on each socket rather than through a
	// context of its own: the caller's context still cancels between
	// attempts, and bounds each attempt by its deadline.
	lerr := newLookupError(m)
	var resp *dns.Msg
	for i := 0; ; i++ {
		server := r.servers[(first+i)%len(r.servers)]
		var err error
		if err = ctx.Err(); err == nil {
			resp, err = r.exchangeUDP(ctx, m, server, earliest(time.Now().Add(attempt), qdeadline))
		}
		if err == nil && resp.Truncated {
			resp, err = r.exchangeTCP(ctx, m, server, qdeadline)
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
	return toAnswer(resp, lerr)
}

// exchangeTCP sends m to server over TCP, until qdeadline.
func (r *resolver) exchangeTCP(ctx context.Context, m *dns.Msg, server string, qdeadline time.Time) (*dns.Msg, error) {
	tctx, cancel := context.WithDeadline(ctx, qdeadline)
	defer cancel()
	resp, _, err := r.tcp.ExchangeContext(tctx, m, server)
	return resp, err
}

// toAnswer turns a response into an answer: NOERROR and NXDOMAIN are
// answers, any other response code is lerr with that code.
func toAnswer(resp *dns.Msg, lerr *lookupError) (*answer, error) {
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
