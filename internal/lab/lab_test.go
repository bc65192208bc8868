package lab

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestPKIChains(t *testing.T) {
	p := NewPKI(t)
	inter := x509.NewCertPool()
	inter.AddCert(p.Intermediate())
	tests := []struct {
		name    string
		cert    tls.Certificate
		useSent bool // verify with the intermediates the chain carries
		ok      bool
	}{
		{"leaf with intermediate", p.Leaf("mx.lab.test"), true, true},
		{"leaf without intermediate", p.LeafNoIntermediate("mx.lab.test"), true, false},
		{"self-signed", p.SelfSigned("mx.lab.test"), true, false},
		{"untrusted root", p.Untrusted("mx.lab.test"), true, false},
		{"expired", p.Expired("mx.lab.test"), true, false},
		{"expiring in 3 days", p.ExpiringIn(72*time.Hour, "mx.lab.test"), true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf, err := x509.ParseCertificate(tt.cert.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			for _, der := range tt.cert.Certificate[1:] {
				c, _ := x509.ParseCertificate(der)
				pool.AddCert(c)
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: pool, DNSName: "mx.lab.test"})
			if (err == nil) != tt.ok {
				t.Errorf("verify error = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if _, err := p.Leaf("127.0.0.2").Leaf.Verify(x509.VerifyOptions{Roots: p.RootPool(), Intermediates: inter, DNSName: "127.0.0.2"}); err != nil {
		t.Errorf("IP leaf: %v", err)
	}
}

func TestDNS(t *testing.T) {
	d := NewDNS(t, "127.0.0.1:0")
	d.Add(
		"example.test. 300 IN MX 10 mx1.example.test.",
		"mx1.example.test. 300 IN A 127.0.0.2",
		"alias.example.test. 300 IN CNAME mx1.example.test.",
		"big.test. 300 IN TXT \""+strings.Repeat("a", 250)+"\"",
	)
	for range 10 {
		d.Add("big.test. 300 IN TXT \"" + strings.Repeat("b", 200) + time.Now().String() + "\"")
	}
	d.SetRcode("fail.test.", dns.TypeMX, dns.RcodeServerFailure)
	d.Drop("drop.test")

	ask := func(netw, name string, qtype uint16) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		c := &dns.Client{Net: netw, Timeout: 300 * time.Millisecond}
		r, _, err := c.Exchange(m, d.Addr())
		return r, err
	}
	tests := []struct {
		name    string
		qname   string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"mx", "example.test.", dns.TypeMX, dns.RcodeSuccess, 1},
		{"case-insensitive", "EXAMPLE.test.", dns.TypeMX, dns.RcodeSuccess, 1},
		{"nodata", "example.test.", dns.TypeA, dns.RcodeSuccess, 0},
		{"empty non-terminal", "test.", dns.TypeA, dns.RcodeSuccess, 0},
		{"nxdomain", "nope.test.", dns.TypeMX, dns.RcodeNameError, 0},
		{"servfail", "fail.test.", dns.TypeMX, dns.RcodeServerFailure, 0},
		{"cname chased", "alias.example.test.", dns.TypeA, dns.RcodeSuccess, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ask("udp", tt.qname, tt.qtype)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tt.rcode || len(r.Answer) != tt.answers {
				t.Errorf("rcode %d answers %d, want %d %d", r.Rcode, len(r.Answer), tt.rcode, tt.answers)
			}
		})
	}
	r, err := ask("udp", "big.test.", dns.TypeTXT)
	if err != nil || !r.Truncated {
		t.Errorf("big answer over UDP: err %v truncated %v, want truncated", err, r != nil && r.Truncated)
	}
	r, err = ask("tcp", "big.test.", dns.TypeTXT)
	if err != nil || r.Truncated || len(r.Answer) != 11 {
		t.Errorf("big answer over TCP: err %v, want 11 answers", err)
	}
	if _, err := ask("udp", "drop.test.", dns.TypeA); err == nil {
		t.Errorf("dropped name answered")
	}
	d.SetAD(true)
	if r, err := ask("tcp", "example.test.", dns.TypeMX); err != nil || !r.AuthenticatedData {
		t.Errorf("AD not set: %v", err)
	}
}

// TestDNSChangesSeenOverUDP: UDP answers are kept packed per query; every
// change to the data must show in the next answer to the same query.
func TestDNSChangesSeenOverUDP(t *testing.T) {
	d := NewDNS(t, "127.0.0.1:0")
	c := &dns.Client{Net: "udp", Timeout: 300 * time.Millisecond}
	ask := func() *dns.Msg {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion("late.test.", dns.TypeMX)
		r, _, err := c.Exchange(m, d.Addr())
		if err != nil {
			t.Fatal(err)
		}
		if r.Id != m.Id {
			t.Fatalf("answer ID %d, want the query's %d", r.Id, m.Id)
		}
		return r
	}
	steps := []struct {
		name    string
		change  func()
		rcode   int
		answers int
		ad      bool
	}{
		{"before", func() {}, dns.RcodeNameError, 0, false},
		{"added", func() { d.Add("late.test. 300 IN MX 10 mx.late.test.") }, dns.RcodeSuccess, 1, false},
		{"added again", func() { d.Add("late.test. 300 IN MX 20 mx2.late.test.") }, dns.RcodeSuccess, 2, false},
		{"AD set", func() { d.SetAD(true) }, dns.RcodeSuccess, 2, true},
		{"rcode set", func() { d.SetRcode("late.test", dns.TypeMX, dns.RcodeServerFailure) }, dns.RcodeServerFailure, 0, true},
		{"rcode cleared", func() { d.SetRcode("late.test", dns.TypeMX, dns.RcodeSuccess) }, dns.RcodeSuccess, 2, true},
	}
	for _, st := range steps {
		st.change()
		for range 2 { // the second answer comes from the packed one
			r := ask()
			if r.Rcode != st.rcode || len(r.Answer) != st.answers || r.AuthenticatedData != st.ad {
				t.Fatalf("%s: rcode %d answers %d AD %v, want %d %d %v", st.name, r.Rcode, len(r.Answer), r.AuthenticatedData, st.rcode, st.answers, st.ad)
			}
		}
	}
	d.Drop("late.test")
	m := new(dns.Msg)
	m.SetQuestion("late.test.", dns.TypeMX)
	if _, _, err := c.Exchange(m, d.Addr()); err == nil {
		t.Errorf("dropped name answered")
	}
}

func TestMXGoodDeliversOverTLS(t *testing.T) {
	p := NewPKI(t)
	cert := p.Leaf("mx.lab.test")
	mx := NewMX(t, "127.0.0.2:0", ModeGood, &cert)
	c, err := smtp.Dial(mx.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered")
	}
	if err := c.StartTLS(&tls.Config{ServerName: "mx.lab.test", RootCAs: p.RootPool()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@sender.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hi\r\n\r\n.dot\r\nbody\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	msgs := mx.Messages()
	if len(msgs) != 1 || msgs[0].From != "a@sender.test" || msgs[0].To[0] != "b@example.test" || !msgs[0].TLS ||
		!strings.Contains(string(msgs[0].Data), "\r\n.dot\r\nbody") {
		t.Errorf("messages = %+v", msgs)
	}
	if mx.Count() != 1 {
		t.Errorf("count = %d", mx.Count())
	}
}

func TestMXModes(t *testing.T) {
	p := NewPKI(t)
	cert := p.Leaf("mx.lab.test")
	tests := []struct {
		mode     Mode
		greeting string // prefix of the first line
	}{
		{ModeNoSTARTTLS, "220 "},
		{ModeSTARTTLS454, "220 "},
		{ModeBadGreeting, "554 "},
		{ModeEndlessBanner, "220-"},
		{ModeTLS10Only, "220 "},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			mx := NewMX(t, "127.0.0.2:0", tt.mode, &cert)
			c, err := net.Dial("tcp", mx.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, tt.greeting) {
				t.Fatalf("greeting %q %v, want %q", line, err, tt.greeting)
			}
		})
	}
	t.Run("tls10", func(t *testing.T) {
		mx := NewMX(t, "127.0.0.2:0", ModeTLS10Only, &cert)
		c, err := smtp.Dial(mx.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.StartTLS(&tls.Config{ServerName: "mx.lab.test", RootCAs: p.RootPool(), MinVersion: tls.VersionTLS10})
		if err != nil {
			t.Fatal(err)
		}
		st, _ := c.TLSConnectionState()
		if st.Version != tls.VersionTLS10 {
			t.Errorf("version %x", st.Version)
		}
	})
}
