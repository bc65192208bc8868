package validate

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/starttls-preload/starttls-preload/internal/lab"
)

func TestResolver(t *testing.T) {
	d := lab.NewDNS(t, "127.0.0.1:0")
	for i := range 12 {
		d.Add("big.test. 300 IN TXT \"" + strings.Repeat(string(rune('a'+i)), 200) + "\"")
	}
	d.Add("small.test. 300 IN MX 10 mx.small.test.")
	d.SetRcode("fail.test", dns.TypeMX, dns.RcodeServerFailure)
	d.SetRcode("refused.test", dns.TypeMX, dns.RcodeRefused)
	d.Drop("drop.test")
	r, err := newResolver(d.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// For the name that never answers: a short step timeout.
	short, err := newResolver(d.Addr(), 250*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		answers int
		nx      bool
		rcode   int // of the *lookupError, -1 for no answer; 0 for no error
	}{
		{"truncated answer retried over TCP", "big.test", dns.TypeTXT, 12, false, 0},
		{"answer", "small.test", dns.TypeMX, 1, false, 0},
		{"nodata", "small.test", dns.TypeA, 0, false, 0},
		{"nxdomain", "none.test", dns.TypeMX, 0, true, 0},
		{"servfail", "fail.test", dns.TypeMX, 0, false, dns.RcodeServerFailure},
		{"refused", "refused.test", dns.TypeMX, 0, false, dns.RcodeRefused},
		{"no answer", "drop.test", dns.TypeMX, 0, false, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Several times, so that reused sockets are exercised.
			for range 3 {
				res := r
				if tt.rcode == -1 {
					res = short
				}
				ans, err := res.query(t.Context(), tt.qname, tt.qtype)
				if tt.rcode != 0 {
					var le *lookupError
					if !errors.As(err, &le) || le.Rcode != tt.rcode {
						t.Fatalf("err = %v, want a lookup error with rcode %d", err, tt.rcode)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if len(ans.rrs) != tt.answers || ans.nxdomain != tt.nx {
					t.Fatalf("%d answers nxdomain %v, want %d %v", len(ans.rrs), ans.nxdomain, tt.answers, tt.nx)
				}
			}
		})
	}
}

func TestResolverSystemConfig(t *testing.T) {
	if _, err := newResolver("", time.Second); err != nil && !errors.Is(err, ErrNoResolver) {
		t.Errorf("err = %v, want nil or ErrNoResolver", err)
	}
	r, err := newResolver("127.0.0.1", time.Second)
	if err != nil || r.servers[0] != "127.0.0.1:53" {
		t.Errorf("default port not added: %v %v", r, err)
	}
}

// TestResolverSkipsStaleAnswers: on a reused socket, an answer to an
// earlier query (another ID) is skipped and the query's own answer used; an
// answer to another question fails the query.
func TestResolverSkipsStaleAnswers(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			stale := new(dns.Msg)
			stale.SetReply(req)
			stale.Id++
			stale.Rcode = dns.RcodeServerFailure
			right := new(dns.Msg)
			right.SetReply(req)
			if req.Question[0].Name == "other.test." {
				right.Question[0].Name = "another.test."
			}
			right.Answer = append(right.Answer, &dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 2)})
			for _, m := range []*dns.Msg{stale, right} {
				out, _ := m.Pack()
				pc.WriteTo(out, from)
			}
		}
	}()
	r, err := newResolver(pc.LocalAddr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		ans, err := r.query(t.Context(), "stale.test", dns.TypeA)
		if err != nil || len(ans.rrs) != 1 {
			t.Fatalf("query: %v, %v; want the answer with the query's ID", ans, err)
		}
	}
	if _, err := r.query(t.Context(), "other.test", dns.TypeA); !errors.Is(err, errQuestionMismatch) {
		t.Errorf("answer to another question: err = %v, want %v", err, errQuestionMismatch)
	}
}
