package admission

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Dialer opens network connections; *net.Dialer is one, and so is
// LimitDialer, which the scheduler hands to the checker.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// LimitDialer is polite to the mail servers it checks: at most PerTarget
// connections open at once to one target (an IP address and port; the port
// is always 25 outside tests), and at most Rate new connections a second to
// one provider, taken as the /24 (IPv4) or /48 (IPv6) network of the
// address, with a random jitter added to every wait.
type LimitDialer struct {
	Dialer    Dialer        // nil: a net.Dialer
	PerTarget int           // ≤ 0: 2
	Rate      float64       // new connections a second per provider; ≤ 0: no limit
	Burst     int           // connections a provider may take at once before the rate applies; ≤ 0: 1
	Jitter    time.Duration // up to this much is added to each rate wait

	// Now and Sleep are the clock (tests inject them); nil: the wall clock.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	targets map[string]*target
	prov    map[netip.Prefix]*bucket
}

type target struct {
	slots chan struct{}
	users int
}

// bucket is a token bucket for one provider.
type bucket struct {
	tokens float64
	last   time.Time
}

func (d *LimitDialer) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *LimitDialer) sleep(ctx context.Context, wait time.Duration) error {
	if d.Sleep != nil {
		return d.Sleep(ctx, wait)
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// DialContext waits for a free slot for the target and for the provider's
// rate, then dials. The slot is held until the connection is closed.
func (d *LimitDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	t := d.acquire(addr)
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		d.release(addr, t, false)
		return nil, ctx.Err()
	}
	if err := d.wait(ctx, addr); err != nil {
		d.release(addr, t, true)
		return nil, err
	}
	inner := d.Dialer
	if inner == nil {
		inner = &net.Dialer{}
	}
	c, err := inner.DialContext(ctx, network, addr)
	if err != nil {
		d.release(addr, t, true)
		return nil, err
	}
	return &limitedConn{Conn: c, done: func() { d.release(addr, t, true) }}, nil
}

func (d *LimitDialer) acquire(addr string) *target {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.targets == nil {
		d.targets = make(map[string]*target)
	}
	t := d.targets[addr]
	if t == nil {
		n := d.PerTarget
		if n <= 0 {
			n = 2
		}
		t = &target{slots: make(chan struct{}, n)}
		d.targets[addr] = t
	}
	t.users++
	return t
}

// release frees a slot (when held) and forgets idle targets, so the map
// stays as small as the set of targets in use.
func (d *LimitDialer) release(addr string, t *target, held bool) {
	if held {
		<-t.slots
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t.users--
	if t.users == 0 {
		delete(d.targets, addr)
	}
}

// providerOf returns the network a target address belongs to.
func providerOf(addr string) (netip.Prefix, bool) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Prefix{}, false
	}
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, err := ip.Prefix(bits)
	return p, err == nil
}

// wait blocks until the target's provider may take one more connection.
func (d *LimitDialer) wait(ctx context.Context, addr string) error {
	if d.Rate <= 0 {
		return nil
	}
	p, ok := providerOf(addr)
	if !ok {
		return nil
	}
	burst := float64(max(d.Burst, 1))
	d.mu.Lock()
	if d.prov == nil {
		d.prov = make(map[netip.Prefix]*bucket)
	}
	now := d.now()
	b := d.prov[p]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		d.prov[p] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*d.Rate)
	b.last = now
	// Take the token now (possibly going negative): later callers queue
	// behind this one.
	b.tokens--
	var wait time.Duration
	if b.tokens < 0 {
		wait = time.Duration(-b.tokens / d.Rate * float64(time.Second))
	}
	d.mu.Unlock()
	if wait <= 0 {
		return nil
	}
	if d.Jitter > 0 {
		wait += rand.N(d.Jitter)
	}
	return d.sleep(ctx, wait)
}

// limitedConn frees its slot once, when closed.
type limitedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.done)
	return err
}
