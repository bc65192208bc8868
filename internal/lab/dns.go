package lab

import (
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/miekg/dns"
)

// DNS is an authoritative-style DNS server for tests that answers from
// records added with Add, over UDP and TCP on the same address. It answers
// recursively-looking queries (it sets RA), follows CNAMEs inside its data,
// and can be told to fail a name (SetRcode), to never answer it (Drop), or
// to mark answers as DNSSEC-authenticated (SetAD). Safe for concurrent use.
type DNS struct {
	addr string
	udp  *dns.Server
	tcp  *dns.Server

	mu      sync.RWMutex
	rrs     map[dns.Question][]dns.RR // keyed on lower-case name, type, class IN
	names   map[string]bool           // every owner name (and its parents: no NXDOMAIN for empty non-terminals)
	rcodes  map[dns.Question]int
	dropped map[string]bool
	ad      bool
	queries atomic.Int64
}

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
	h := dns.HandlerFunc(d.serve)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	d.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	d.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify}
	go d.udp.ActivateAndServe()
	go d.tcp.ActivateAndServe()
	<-started
	<-started
	t.Cleanup(func() {
		d.udp.Shutdown()
		d.tcp.Shutdown()
	})
	return d
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
	d.ad = ad
}

// Drop makes the server never answer queries for name (any type), so that
// clients time out.
func (d *DNS) Drop(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropped[strings.ToLower(dns.Fqdn(name))] = true
}

func (d *DNS) serve(w dns.ResponseWriter, req *dns.Msg) {
	d.queries.Add(1)
	d.mu.RLock()
	defer d.mu.RUnlock()
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if d.dropped[name] {
		return
	}
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	m.AuthenticatedData = d.ad
	if rc, ok := d.rcodes[dns.Question{Name: name, Qtype: q.Qtype, Qclass: dns.ClassINET}]; ok {
		m.Rcode = rc
		w.WriteMsg(m)
		return
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
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		m.Truncate(size)
	}
	w.WriteMsg(m)
}
