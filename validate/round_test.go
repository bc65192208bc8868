package validate

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/starttls-preload/starttls-preload/internal/lab"
)

// TestRoundDialsEachAddressOnce checks many domains that share a few MX
// hosts through one Round: each MX address must be contacted once.
func TestRoundDialsEachAddressOnce(t *testing.T) {
	l := newTestLab(t)
	const hosts, domains = 5, 200
	var mxs []*lab.MX
	for h := range hosts {
		name := fmt.Sprintf("mx%d.shared.test", h)
		c := l.pki.Leaf(name)
		ip := l.ip()
		mxs = append(mxs, lab.NewMX(t, ip+":"+strconv.Itoa(l.port), lab.ModeGood, &c))
		l.dns.Add(name + ". 300 IN A " + ip)
	}
	for d := range domains {
		l.dns.Add(fmt.Sprintf("d%d.test. 300 IN MX 10 mx%d.shared.test.", d, d%hosts))
		l.dns.Add(fmt.Sprintf("d%d.test. 300 IN MX 20 mx%d.shared.test.", d, (d+1)%hosts))
	}
	v := l.validator(nil)
	r := v.NewRound()
	var wg sync.WaitGroup
	var bad atomic.Int32
	sem := make(chan struct{}, 32)
	for d := range domains {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := r.Check(t.Context(), fmt.Sprintf("d%d.test", d))
			if err != nil || !res.Eligible || len(res.MXs) != 2 {
				bad.Add(1)
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d domains not eligible", bad.Load())
	}
	for i, mx := range mxs {
		if n := mx.Count(); n != 1 {
			t.Errorf("mx%d was contacted %d times, want once", i, n)
		}
	}
	// A new round checks again.
	if _, err := v.NewRound().Check(t.Context(), "d0.test"); err != nil {
		t.Fatal(err)
	}
	if mxs[0].Count() != 2 {
		t.Errorf("a new round did not check again: %d", mxs[0].Count())
	}
}

func TestCacheGenerations(t *testing.T) {
	c := cache[int]{max: 2}
	calls := 0
	get := func(k string) int {
		return c.do(context.Background(), k, func() int { calls++; return len(k) })
	}
	get("a")
	get("bb")
	get("a") // still cached
	if calls != 2 {
		t.Fatalf("calls = %d, want 2", calls)
	}
	get("ccc") // rotates: a and bb move to the old generation
	get("a")   // found in the old generation
	if calls != 3 {
		t.Fatalf("calls = %d, want 3", calls)
	}
	get("dddd") // rotates again: bb is dropped
	get("eeeee")
	get("ffffff")
	get("bb")
	if calls != 7 {
		t.Fatalf("calls = %d, want 7 (bb dropped after two rotations)", calls)
	}
	if len(c.cur)+len(c.old) > 2*c.max {
		t.Errorf("cache holds %d entries, bound %d", len(c.cur)+len(c.old), 2*c.max)
	}
}

func TestCacheCancelledLeaderIsNotReused(t *testing.T) {
	c := cache[string]{max: 10}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := c.do(ctx, "k", func() string { return "partial" }); got != "partial" {
		t.Fatal(got)
	}
	if got := c.do(context.Background(), "k", func() string { return "full" }); got != "full" {
		t.Errorf("got %q: a result computed under a cancelled context was reused", got)
	}
}
