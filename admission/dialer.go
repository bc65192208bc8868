package admission

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
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
//
// Each provider's rate is a token bucket (golang.org/x/time/rate) kept in a
// map of at most MaxProviders entries. A provider whose bucket is full again
// (idle for Burst/Rate seconds) is forgotten: a new bucket for it would be
// the same. When the map is full of busy providers, the one used least
// recently is forgotten, so memory stays bounded whatever the number of
// networks a round reaches.
type LimitDialer struct {
	Dialer       Dialer        // nil: a net.Dialer
	PerTarget    int           // ≤ 0: 2
	Rate         float64       // new connections a second per provider; ≤ 0: no limit
	Burst        int           // connections a provider may take at once before the rate applies; ≤ 0: 1
	Jitter       time.Duration // up to this much is added to each rate wait
	MaxProviders int           // providers remembered at once; ≤ 0: DefaultMaxProviders

	// Now and Sleep are the clock (tests inject them); nil: the wall clock.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error

	mu      sync.Mutex
	targets map[string]*target
	prov    map[netip.Prefix]*provider
	swept   time.Time // last sweep of idle providers
}

// DefaultMaxProviders bounds the providers a LimitDialer remembers.
const DefaultMaxProviders = 4096

type target struct {
	slots chan struct{}
	users int
}

// provider is the rate of one provider's new connections.
type provider struct {
	lim  *rate.Limiter
	last time.Time // of the latest reservation
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
	return Sleep(ctx, wait)
}

// Sleep waits for d on the real clock, or until ctx is done (then it
// returns ctx's error). It is the default of every injectable Sleep.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
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
	d.mu.Lock()
	now := d.now()
	lim := d.limiter(p, now)
	// Take the token now (possibly going into debt): later callers queue
	// behind this one.
	r := lim.ReserveN(now, 1)
	d.mu.Unlock()
	wait := r.DelayFrom(now)
	if wait <= 0 {
		return nil
	}
	if d.Jitter > 0 {
		wait += rand.N(d.Jitter)
	}
	if err := d.sleep(ctx, wait); err != nil {
		// Not dialled: the token goes back to the provider.
		r.CancelAt(d.now())
		return err
	}
	return nil
}

// limiter returns p's limiter, creating it; d.mu is held. It forgets idle
// providers first, at most once per refill time, and keeps the map within
// MaxProviders.
func (d *LimitDialer) limiter(p netip.Prefix, now time.Time) *rate.Limiter {
	burst := max(d.Burst, 1)
	if d.prov == nil {
		d.prov = make(map[netip.Prefix]*provider)
	}
	if pv := d.prov[p]; pv != nil {
		pv.last = now
		return pv.lim
	}
	limit := d.MaxProviders
	if limit <= 0 {
		limit = DefaultMaxProviders
	}
	refill := time.Duration(float64(burst) / d.Rate * float64(time.Second))
	if len(d.prov) >= limit || now.Sub(d.swept) >= refill {
		d.forgetIdle(now, burst)
	}
	if len(d.prov) >= limit {
		d.forgetOldest()
	}
	pv := &provider{lim: rate.NewLimiter(rate.Limit(d.Rate), burst), last: now}
	d.prov[p] = pv
	return pv.lim
}

// forgetIdle drops the providers whose bucket is full again.
func (d *LimitDialer) forgetIdle(now time.Time, burst int) {
	d.swept = now
	for p, pv := range d.prov {
		if pv.lim.TokensAt(now) >= float64(burst) {
			delete(d.prov, p)
		}
	}
}

// forgetOldest drops the provider used least recently.
func (d *LimitDialer) forgetOldest() {
	var (
		oldest netip.Prefix
		at     time.Time
		found  bool
	)
	for p, pv := range d.prov {
		if !found || pv.last.Before(at) {
			oldest, at, found = p, pv.last, true
		}
	}
	if found {
		delete(d.prov, oldest)
	}
}

// providers returns how many providers are remembered.
func (d *LimitDialer) providers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.prov)
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
