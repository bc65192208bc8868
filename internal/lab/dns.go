package lab

import (
	"errors"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// DNS is an authoritative-style DNS server for tests that answers from
// records added with Add, over UDP and TCP on the same address. It answers
// recursively-looking queries (it sets RA), follows CNAMEs inside its data,
// and can be told to fail a name (SetRcode), to never answer it (Drop), or
// to mark answers as DNSSEC-authenticated (SetAD). Safe for concurrent use.
type DNS struct {
	addr string
	udp  *net.UDPConn
	tcp  *dns.Server
	wg   sync.WaitGroup // the UDP readers

	mu      sync.RWMutex
	rrs     map[dns.Question][]dns.RR // keyed on lower-case name, type, class IN
	names   map[string]bool           // every owner name (and its parents: no NXDOMAIN for empty non-terminals)
	rcodes  map[dns.Question]int
	dropped map[string]bool
	ad      bool
	queries atomic.Int64

	// UDP answers already packed, keyed on the query's bytes after its
	// ID: a query answers the same way until the data changes (gen).
	cmu    sync.Mutex
	gen    uint64
	packed map[string][]byte
}

// maxPacked bounds the packed-answer cache; it is emptied when full.
const maxPacked = 1 << 16

// NewDNS starts a DNS server on addr ("127.0.0.1:0" for any free port, or
// "127.0.0.53:53" for resolv.conf users, which needs root) and stops it when
// the test ends.
func NewDNS(t testing.TB, addr string) *DNS {
	t.Helper()
	d := &DNS{
		rrs:     map[dns.Question][]dns.RR{},
		names:   map[string]bool{},
		rcodes:  map[dns.Question]int{},
		dropped: map[string]bool{},
	}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	for range 20 {
		pc, err = net.ListenPacket("udp", addr)
		if err != nil {
			t.Fatalf("lab: dns: %v", err)
		}
		ln, err = net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			break
		}
		pc.Close() // the TCP port was taken: try another free port
		if _, port, _ := net.SplitHostPort(addr); port != "0" {
			break
		}
	}
	if err != nil {
		t.Fatalf("lab: dns: %v", err)
	}
	d.addr = pc.LocalAddr().String()
	d.udp = pc.(*net.UDPConn)
	started := make(chan struct{})
	d.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(d.serveTCP), NotifyStartedFunc: func() { close(started) }}
	go d.tcp.ActivateAndServe()
	<-started
	// UDP is served by a few readers that answer inline (no goroutine per
	// query), from packed answers when the same query came before.
	for range max(2, runtime.GOMAXPROCS(0)) {
		d.wg.Go(d.readUDP)
	}
	t.Cleanup(func() {
		d.udp.Close()
		d.wg.Wait()
		d.tcp.Shutdown()
	})
	return d
}

// batchConn reads and writes several datagrams per system call.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// readUDP answers the queries that have arrived, several per system call
// when several are waiting (as a client's batched queries are).
func (d *DNS) readUDP() {
	var bc batchConn = ipv4.NewPacketConn(d.udp)
	if a, ok := d.udp.LocalAddr().(*net.UDPAddr); ok && a.IP.To4() == nil {
		bc = ipv6.NewPacketConn(d.udp)
	}
	ms := make([]ipv4.Message, 16)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, 4096)}
	}
	var out []ipv4.Message
	for {
		n, err := bc.ReadBatch(ms, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		out = out[:0]
		for _, m := range ms[:n] {
			if a := d.answerUDP(m.Buffers[0][:m.N]); a != nil {
				out = append(out, ipv4.Message{Buffers: [][]byte{a}, Addr: m.Addr})
			}
		}
		for sent := 0; sent < len(out); {
			k, err := bc.WriteBatch(out[sent:], 0)
			if err != nil {
				k = 1 // that answer is lost, as a datagram may be
			}
			sent += k
		}
	}
}

// answerUDP returns the packed answer to the query in raw, or nil for no
// answer. It must not keep raw.
func (d *DNS) answerUDP(raw []byte) []byte {
	d.queries.Add(1)
	if len(raw) < 12 || raw[2]&0x80 != 0 { // too short, or a response: ignore
		return nil
	}
	key := string(raw[2:])
	d.cmu.Lock()
	cached, ok := d.packed[key]
	gen := d.gen
	d.cmu.Unlock()
	if ok {
		out := append([]byte(nil), cached...)
		out[0], out[1] = raw[0], raw[1] // the query's ID
		return out
	}
	req := new(dns.Msg)
	if err := req.Unpack(raw); err != nil {
		return nil
	}
	m := d.answer(req, true)
	if m == nil {
		return nil
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	d.cmu.Lock()
	if d.gen == gen {
		if d.packed == nil || len(d.packed) >= maxPacked {
			d.packed = map[string][]byte{}
		}
		d.packed[key] = out
	}
	d.cmu.Unlock()
	return out
}

// changed drops the packed answers: the data they came from changed. The
// caller holds d.mu for writing.
func (d *DNS) changed() {
	d.cmu.Lock()
	d.gen++
	d.packed = nil
	d.cmu.Unlock()
}

// Addr returns the host:port the server listens on (UDP and TCP).
func (d *DNS) Addr() string { return d.addr }

// Queries returns how many queries the server has received.
func (d *DNS) Queries() int {
	return int(d.queries.Load())
}

// Add adds records given as zone-file lines, for example
// "example.test. 300 IN MX 10 mx1.example.test.". It panics on a line that
// does not parse: records are test data.
func (d *DNS) Add(rrs ...string) {
	parsed := make([]dns.RR, 0, len(rrs))
	for _, s := range rrs {
		rr, err := dns.NewRR(s)
		if err != nil || rr == nil {
			panic("lab: dns: bad record " + s + ": " + errString(err))
		}
		parsed = append(parsed, rr)
	}
	d.AddRR(parsed...)
}

// AddRR adds parsed records.
func (d *DNS) AddRR(rrs ...dns.RR) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.changed()
	for _, rr := range rrs {
		h := rr.Header()
		name := strings.ToLower(dns.Fqdn(h.Name))
		q := dns.Question{Name: name, Qtype: h.Rrtype, Qclass: dns.ClassINET}
		d.rrs[q] = append(d.rrs[q], rr)
		for n := name; ; {
			d.names[n] = true
			i, end := dns.NextLabel(n, 0)
			if end {
				break
			}
			n = n[i:]
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "no record"
	}
	return err.Error()
}

// SetRcode makes queries for (name, qtype) answer with rcode, for example
// dns.RcodeServerFailure. dns.RcodeSuccess removes the override.
func (d *DNS) SetRcode(name string, qtype uint16, rcode int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.changed()
	q := dns.Question{Name: strings.ToLower(dns.Fqdn(name)), Qtype: qtype, Qclass: dns.ClassINET}
	if rcode == dns.RcodeSuccess {
		delete(d.rcodes, q)
		return
	}
	d.rcodes[q] = rcode
}

// SetAD sets or clears the AD bit on every answer, as a validating
// resolver does for DNSSEC-authenticated data.
func (d *DNS) SetAD(ad bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.changed()
	d.ad = ad
}

// Drop makes the server never answer queries for name (any type), so that
// clients time out.
func (d *DNS) Drop(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	defer d.changed()
	d.dropped[strings.ToLower(dns.Fqdn(name))] = true
}

func (d *DNS) serveTCP(w dns.ResponseWriter, req *dns.Msg) {
	d.queries.Add(1)
	if m := d.answer(req, false); m != nil {
		w.WriteMsg(m)
	}
}

// answer returns the reply to req, or nil to send none. Over UDP, it is
// truncated to the size the query allows.
func (d *DNS) answer(req *dns.Msg, udp bool) *dns.Msg {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		if req.Opcode != dns.OpcodeQuery {
			m.Rcode = dns.RcodeNotImplemented
		}
		return m
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if d.dropped[name] {
		return nil
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.AuthenticatedData = d.ad
	if rc, ok := d.rcodes[dns.Question{Name: name, Qtype: q.Qtype, Qclass: dns.ClassINET}]; ok {
		m.Rcode = rc
		return m
	}
	// Follow CNAMEs inside the data (at most 8), as a recursive resolver would.
	for range 8 {
		if rrs := d.rrs[dns.Question{Name: name, Qtype: q.Qtype, Qclass: dns.ClassINET}]; len(rrs) > 0 {
			m.Answer = append(m.Answer, rrs...)
			break
		}
		cn := d.rrs[dns.Question{Name: name, Qtype: dns.TypeCNAME, Qclass: dns.ClassINET}]
		if len(cn) == 0 || q.Qtype == dns.TypeCNAME {
			if !d.names[name] {
				m.Rcode = dns.RcodeNameError
			}
			break
		}
		m.Answer = append(m.Answer, cn[0])
		name = strings.ToLower(cn[0].(*dns.CNAME).Target)
	}
	if udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	return m
}
