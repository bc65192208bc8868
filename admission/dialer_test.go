package admission

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/testclock"
)

// countingDialer hands out pipe connections and tracks how many are open
// per address.
type countingDialer struct {
	mu      sync.Mutex
	open    map[string]int
	maxOpen map[string]int
	dials   int
}

func (c *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open == nil {
		c.open, c.maxOpen = map[string]int{}, map[string]int{}
	}
	c.dials++
	c.open[addr]++
	c.maxOpen[addr] = max(c.maxOpen[addr], c.open[addr])
	a, b := net.Pipe()
	b.Close()
	return &trackedConn{Conn: a, done: func() {
		c.mu.Lock()
		c.open[addr]--
		c.mu.Unlock()
	}}, nil
}

type trackedConn struct {
	net.Conn
	once sync.Once
	done func()
}

func (t *trackedConn) Close() error {
	t.once.Do(t.done)
	return t.Conn.Close()
}

func TestLimitDialerPerTarget(t *testing.T) {
	inner := &countingDialer{}
	d := &LimitDialer{Dialer: inner, PerTarget: 2}
	var wg sync.WaitGroup
	for i := range 40 {
		addr := "127.0.0.2:25"
		if i%2 == 1 {
			addr = "127.0.0.3:25"
		}
		wg.Go(func() {
			c, err := d.DialContext(context.Background(), "tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			c.Close()
			c.Close() // a second Close frees nothing more
		})
	}
	wg.Wait()
	for addr, n := range inner.maxOpen {
		if n > 2 {
			t.Errorf("%s: %d connections open at once, want at most 2", addr, n)
		}
	}
	if inner.dials != 40 {
		t.Errorf("%d dials, want 40", inner.dials)
	}
	if len(d.targets) != 0 {
		t.Errorf("%d idle targets kept", len(d.targets))
	}
}

func TestLimitDialerCancelWhileWaiting(t *testing.T) {
	d := &LimitDialer{Dialer: &countingDialer{}, PerTarget: 1}
	c, err := d.DialContext(context.Background(), "tcp", "127.0.0.2:25")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.DialContext(ctx, "tcp", "127.0.0.2:25"); err == nil {
		t.Fatal("dial past the limit with a cancelled context succeeded")
	}
}

// TestLimitDialerProviderRate checks the waits the per-provider rate asks
// for, with an injected clock and sleep: a burst goes at once, then one
// connection per 1/Rate seconds, and another provider is not held up.
func TestLimitDialerProviderRate(t *testing.T) {
	clock := testclock.New(t0)
	var mu sync.Mutex
	var waits []time.Duration
	d := &LimitDialer{
		Dialer: &countingDialer{}, PerTarget: 100, Rate: 2, Burst: 2,
		Now: clock.Now,
		Sleep: func(ctx context.Context, w time.Duration) error {
			mu.Lock()
			waits = append(waits, w)
			mu.Unlock()
			return nil
		},
	}
	dial := func(addr string) {
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	dial("192.0.2.1:25")
	dial("192.0.2.2:25")
	if len(waits) != 0 {
		t.Fatalf("the burst waited: %v", waits)
	}
	dial("192.0.2.3:25")    // same /24: waits half a second
	dial("198.51.100.1:25") // another provider: no wait
	dial("192.0.2.4:25")    // queued behind the third: a second
	want := []time.Duration{500 * time.Millisecond, time.Second}
	if len(waits) != len(want) || waits[0] != want[0] || waits[1] != want[1] {
		t.Errorf("waits = %v, want %v", waits, want)
	}
	clock.Add(10 * time.Second)
	waits = nil
	dial("192.0.2.5:25")
	if len(waits) != 0 {
		t.Errorf("after a rest the provider still waited: %v", waits)
	}
}

func TestProviderOf(t *testing.T) {
	tests := map[string]string{
		"192.0.2.77:25":         "192.0.2.0/24",
		"[2001:db8:1:2::25]:25": "2001:db8:1::/48",
		"[::ffff:192.0.2.9]:25": "192.0.2.0/24",
	}
	for addr, want := range tests {
		p, ok := providerOf(addr)
		if !ok || p.String() != want {
			t.Errorf("providerOf(%s) = %v %v, want %s", addr, p, ok, want)
		}
	}
	if _, ok := providerOf("mx.example.test:25"); ok {
		t.Error("a host name has a provider")
	}
}

// TestLimitDialerForgetsIdleProviders: a provider whose bucket is full
// again is forgotten, so the rate map shrinks back once a round's networks
// are idle; a forgotten provider starts again with a full burst.
func TestLimitDialerForgetsIdleProviders(t *testing.T) {
	clock := testclock.New(t0)
	var waits []time.Duration
	d := &LimitDialer{
		Dialer: &countingDialer{}, PerTarget: 100, Rate: 2, Burst: 2,
		Now:   clock.Now,
		Sleep: func(ctx context.Context, w time.Duration) error { waits = append(waits, w); return nil },
	}
	dial := func(addr string) {
		t.Helper()
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for i := range 200 {
		dial(fmt.Sprintf("10.%d.%d.1:25", i/256, i%256))
	}
	if n := d.providers(); n != 200 {
		t.Fatalf("%d providers remembered after 200 networks at once, want 200", n)
	}
	// One second later (Burst/Rate), every bucket is full again: the next
	// new provider sweeps them away.
	clock.Add(time.Second)
	dial("192.0.2.1:25")
	if n := d.providers(); n != 1 {
		t.Errorf("%d providers remembered after they went idle, want 1", n)
	}
	// The rate still applies to the one in use.
	dial("192.0.2.2:25")
	dial("192.0.2.3:25")
	if len(waits) != 1 || waits[0] != 500*time.Millisecond {
		t.Errorf("waits = %v, want one of 500ms", waits)
	}
}

// TestLimitDialerProviderBound: however many busy networks a round
// reaches, at most MaxProviders are remembered; the least recently used is
// forgotten first, and the rate applies to those remembered.
func TestLimitDialerProviderBound(t *testing.T) {
	clock := testclock.New(t0)
	var waits []time.Duration
	d := &LimitDialer{
		Dialer: &countingDialer{}, PerTarget: 100, Rate: 1, Burst: 1, MaxProviders: 8,
		Now:   clock.Now,
		Sleep: func(ctx context.Context, w time.Duration) error { waits = append(waits, w); return nil },
	}
	dial := func(addr string) {
		t.Helper()
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	for i := range 100 {
		dial(fmt.Sprintf("10.0.%d.1:25", i))
		if n := d.providers(); n > 8 {
			t.Fatalf("%d providers remembered, want at most 8", n)
		}
		clock.Add(time.Millisecond) // all still busy: buckets refill in 1s
	}
	if len(waits) != 0 {
		t.Fatalf("first connections to new providers waited: %v", waits)
	}
	// The latest provider is remembered: a second connection waits.
	dial("10.0.99.2:25")
	if len(waits) != 1 || waits[0] <= 0 {
		t.Errorf("second connection to a remembered busy provider: waits %v, want one", waits)
	}
	// The oldest was forgotten: it starts again with a full burst.
	waits = nil
	dial("10.0.0.2:25")
	if len(waits) != 0 {
		t.Errorf("a forgotten provider waited: %v", waits)
	}
}

// TestLimitDialerCancelReturnsToken: a dial cancelled while it waits for
// the provider's rate gives its token back, so the next caller does not
// wait behind a connection that was never made.
func TestLimitDialerCancelReturnsToken(t *testing.T) {
	clock := testclock.New(t0)
	var waits []time.Duration
	d := &LimitDialer{
		Dialer: &countingDialer{}, PerTarget: 100, Rate: 1, Burst: 1,
		Now: clock.Now,
		Sleep: func(ctx context.Context, w time.Duration) error {
			waits = append(waits, w)
			return context.Canceled
		},
	}
	c, err := d.DialContext(context.Background(), "tcp", "192.0.2.1:25")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := d.DialContext(context.Background(), "tcp", "192.0.2.2:25"); err == nil {
		t.Fatal("a dial whose wait was cancelled succeeded")
	}
	d.Sleep = func(ctx context.Context, w time.Duration) error { waits = append(waits, w); return nil }
	if _, err := d.DialContext(context.Background(), "tcp", "192.0.2.3:25"); err != nil {
		t.Fatal(err)
	}
	if len(waits) != 2 || waits[1] != waits[0] {
		t.Errorf("waits = %v, want the second as long as the first (the cancelled token returned)", waits)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	if err := Sleep(context.Background(), 0); err != nil {
		t.Fatalf("Sleep(0) = %v, want nil", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with a cancelled context = %v, want context.Canceled", err)
	}
}
