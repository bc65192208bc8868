package admission

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/validate"
)

// netCounter dials for real and counts connections per address.
type netCounter struct {
	mu    sync.Mutex
	dials map[string]int
}

func (n *netCounter) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	if n.dials == nil {
		n.dials = map[string]int{}
	}
	n.dials[addr]++
	n.mu.Unlock()
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}

// TestRoundChecksEachMXAddressOnce runs scheduler rounds over 40 domains
// that share two MX hosts, through the real checker and the polite dialer
// on the lab network: each round connects to each MX address once.
func TestRoundChecksEachMXAddressOnce(t *testing.T) {
	pki := lab.NewPKI(t)
	dns := lab.NewDNS(t, "127.0.0.1:0")
	cert := pki.Leaf("mx1.provider.test", "mx2.provider.test")
	mx1 := lab.NewMX(t, "127.0.0.2:0", lab.ModeGood, &cert)
	_, port, _ := net.SplitHostPort(mx1.Addr())
	lab.NewMX(t, "127.0.0.3:"+port, lab.ModeGood, &cert)
	dns.Add("mx1.provider.test. 300 IN A 127.0.0.2", "mx2.provider.test. 300 IN A 127.0.0.3")

	ctx := context.Background()
	st := memstore.New()
	clock := testclock.New(time.Now().UTC())
	for i := range 40 {
		name := fmt.Sprintf("d%02d.test", i)
		dns.Add(name+". 300 IN MX 10 mx1.provider.test.", name+". 300 IN MX 20 mx2.provider.test.")
		addDomain(t, st, name, Validating, clock.Now(), "*.provider.test")
	}
	counter := &netCounter{}
	var smtpPort int
	fmt.Sscan(port, &smtpPort)
	v, err := validate.New(validate.Config{
		Resolver: dns.Addr(), CAFile: pki.WriteRootPEM(t), AllowPrivate: true, SMTPPort: smtpPort,
		Timeout: 10 * time.Second, Dialer: &LimitDialer{Dialer: counter, PerTarget: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewScheduler(Config{Store: st, NewRound: func() Checker { return v.NewRound() }, Now: clock.Now,
		CheckInterval: 6 * time.Hour, Jitter: -1, Batch: 16, Concurrency: 8})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 {
		counter.mu.Lock()
		counter.dials = nil
		counter.mu.Unlock()
		stats, err := s.RunRound(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if stats.Checked != 40 || stats.Passed != 40 {
			t.Errorf("round %d: %+v, want 40 checked and passed", round, stats)
		}
		if len(counter.dials) != 2 {
			t.Errorf("round %d: dialled %v, want both MX addresses", round, counter.dials)
		}
		for addr, n := range counter.dials {
			if n != 1 {
				t.Errorf("round %d: %s dialled %d times, want once", round, addr, n)
			}
		}
		clock.Add(6 * time.Hour)
	}
}
