package validate

import (
	"context"
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
		var prev uint16
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			// The stale answer carries the previous query's ID: an earlier
			// query's, or, in a batch, that of another question still
			// waiting for its answer.
			stale := new(dns.Msg)
			stale.SetReply(req)
			stale.Id, prev = prev, req.Id
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
	// The same together: the stale answers carry IDs that may be those of
	// the other questions asked, and must still not be taken for theirs.
	for range 3 {
		ans, errs := r.queryAll(t.Context(), question{"stale.test", dns.TypeA}, question{"stale2.test", dns.TypeA},
			question{"other.test", dns.TypeA}, question{"stale3.test", dns.TypeA})
		for _, i := range []int{0, 1, 3} {
			if errs[i] != nil || len(ans[i].rrs) != 1 {
				t.Fatalf("question %d: %v, %v; want the answer with its own ID", i, ans[i], errs[i])
			}
		}
		if !errors.Is(errs[2], errQuestionMismatch) {
			t.Errorf("answer to another question: err = %v, want %v", errs[2], errQuestionMismatch)
		}
	}
}

// TestResolverQueryAll: questions asked together get the answers query
// would give each of them, by index, whatever happens to the others: a
// lost answer, a truncated one (retried over TCP), an error code.
func TestResolverQueryAll(t *testing.T) {
	d := lab.NewDNS(t, "127.0.0.1:0")
	for i := range 12 {
		d.Add("big.test. 300 IN TXT \"" + strings.Repeat(string(rune('a'+i)), 200) + "\"")
	}
	d.Add("small.test. 300 IN MX 10 mx.small.test.", "mx.small.test. 300 IN A 127.0.0.9")
	d.SetRcode("fail.test", dns.TypeMX, dns.RcodeServerFailure)
	d.Drop("drop.test")
	r, err := newResolver(d.Addr(), 750*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	qs := []question{
		{"small.test", dns.TypeMX},
		{"big.test", dns.TypeTXT},
		{"none.test", dns.TypeMX},
		{"fail.test", dns.TypeMX},
		{"mx.small.test", dns.TypeA},
		{"small.test", dns.TypeA},
	}
	check := func(t *testing.T, ans []*answer, errs []error, dropped bool) {
		t.Helper()
		want := []struct {
			n     int
			nx    bool
			rcode int // of the *lookupError; 0 for none
		}{{1, false, 0}, {12, false, 0}, {0, true, 0}, {0, false, dns.RcodeServerFailure}, {1, false, 0}, {0, false, 0}}
		for i, w := range want {
			if w.rcode != 0 {
				var le *lookupError
				if !errors.As(errs[i], &le) || le.Rcode != w.rcode || ans[i] != nil {
					t.Errorf("%v: %v, %v; want rcode %d", qs[i], ans[i], errs[i], w.rcode)
				}
				continue
			}
			if errs[i] != nil || len(ans[i].rrs) != w.n || ans[i].nxdomain != w.nx {
				t.Errorf("%v: %+v, %v; want %d records, nxdomain %v", qs[i], ans[i], errs[i], w.n, w.nx)
			}
		}
		if dropped {
			var le *lookupError
			if !errors.As(errs[len(want)], &le) || le.Rcode != -1 || le.Name != "drop.test" || le.Type != "MX" {
				t.Errorf("dropped question: %v, want a lookup error without answer", errs[len(want)])
			}
		}
	}
	for range 3 { // reused sockets too
		ans, errs := r.queryAll(t.Context(), qs...)
		check(t, ans, errs, false)
	}
	ans, errs := r.queryAll(t.Context(), append(qs, question{"drop.test", dns.TypeMX})...)
	check(t, ans, errs, true)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, errs = r.queryAll(ctx, qs...)
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v: err = %v", qs[i], err)
		}
	}
}

// TestResolverQueryAllOneExchange: over IPv4 and IPv6 resolver addresses,
// the questions asked together are answered by the batch itself, each
// asked once (the single-query fallback would ask again).
func TestResolverQueryAllOneExchange(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(addr, func(t *testing.T) {
			d := lab.NewDNS(t, addr)
			d.Add("v6.test. 300 IN MX 10 mx.v6.test.", "mx.v6.test. 300 IN AAAA ::1")
			r, err := newResolver(d.Addr(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for round := 1; round <= 2; round++ {
				ans, errs := r.queryAll(t.Context(), question{"v6.test", dns.TypeMX}, question{"mx.v6.test", dns.TypeAAAA}, question{"mx.v6.test", dns.TypeA})
				for i, want := range []int{1, 1, 0} {
					if errs[i] != nil || len(ans[i].rrs) != want {
						t.Fatalf("question %d: %v, %v; want %d records", i, ans[i], errs[i], want)
					}
				}
				if n := d.Queries(); n != 3*round {
					t.Fatalf("the server saw %d queries after %d batches of 3", n, round)
				}
			}
		})
	}
}
