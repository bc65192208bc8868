package submit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Burst at once, then one every Every. The zero
// Limit allows everything.
type Limit struct {
	Every time.Duration
	Burst int
}

// Limits are the rate limits of the door, per client address and per
// domain. Zero fields take the defaults of DefaultLimits.
type Limits struct {
	CheckPerIP      Limit // check requests (cached or not) from one address
	CheckPerDomain  Limit // live checks of one domain (cache misses)
	SubmitPerIP     Limit // submissions and removal requests from one address
	SubmitPerDomain Limit // submissions and removal requests for one domain
	VerifyPerIP     Limit // DNS verifications and token confirmations from one address
	VerifyPerDomain Limit // DNS verifications for one domain (token uses are limited per address only)
	MailPerDomain   Limit // mails to one domain's postmaster (the resend limit)
}

// DefaultLimits are the limits used for zero fields.
func DefaultLimits() Limits {
	return Limits{
		CheckPerIP:      Limit{Every: 6 * time.Second, Burst: 10},
		CheckPerDomain:  Limit{Every: time.Minute, Burst: 2},
		SubmitPerIP:     Limit{Every: time.Minute, Burst: 5},
		SubmitPerDomain: Limit{Every: 5 * time.Minute, Burst: 3},
		VerifyPerIP:     Limit{Every: 10 * time.Second, Burst: 10},
		VerifyPerDomain: Limit{Every: 10 * time.Second, Burst: 5},
		MailPerDomain:   Limit{Every: 20 * time.Minute, Burst: 2},
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *Limit, def Limit) {
		if *v == (Limit{}) {
			*v = def
		}
	}
	set(&l.CheckPerIP, d.CheckPerIP)
	set(&l.CheckPerDomain, d.CheckPerDomain)
	set(&l.SubmitPerIP, d.SubmitPerIP)
	set(&l.SubmitPerDomain, d.SubmitPerDomain)
	set(&l.VerifyPerIP, d.VerifyPerIP)
	set(&l.VerifyPerDomain, d.VerifyPerDomain)
	set(&l.MailPerDomain, d.MailPerDomain)
	return l
}

// maxLimiterKeys bounds the keys one limiter remembers; when full, keys
// whose bucket is full again are forgotten (they would allow a burst
// anyway), and if none is, the oldest half goes.
const maxLimiterKeys = 100_000

// keyLimiter is one rate.Limiter per key (a client address or a domain),
// read with the injected clock.
type keyLimiter struct {
	lim Limit
	now func() time.Time

	mu   sync.Mutex
	keys map[string]*keyEntry
}

type keyEntry struct {
	l    *rate.Limiter
	last time.Time
}

func newKeyLimiter(l Limit, now func() time.Time) *keyLimiter {
	return &keyLimiter{lim: l, now: now, keys: map[string]*keyEntry{}}
}

// allow takes one token for key. When none is left it takes nothing and
// returns how long until one is.
func (k *keyLimiter) allow(key string) (ok bool, retry time.Duration) {
	if k == nil || k.lim.Every <= 0 {
		return true, 0
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.keys[key]
	if e == nil {
		if len(k.keys) >= maxLimiterKeys {
			k.prune(now)
		}
		e = &keyEntry{l: rate.NewLimiter(rate.Every(k.lim.Every), max(k.lim.Burst, 1))}
		k.keys[key] = e
	}
	e.last = now
	r := e.l.ReserveN(now, 1)
	if !r.OK() {
		return false, k.lim.Every
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// prune forgets keys: first those idle long enough to be full again, then,
// if that freed nothing, the older half.
func (k *keyLimiter) prune(now time.Time) {
	full := k.lim.Every * time.Duration(max(k.lim.Burst, 1))
	for key, e := range k.keys {
		if now.Sub(e.last) >= full {
			delete(k.keys, key)
		}
	}
	if len(k.keys) < maxLimiterKeys {
		return
	}
	var sum float64
	for _, e := range k.keys {
		sum += float64(e.last.UnixNano())
	}
	mean := int64(sum / float64(len(k.keys)))
	for key, e := range k.keys {
		if e.last.UnixNano() <= mean {
			delete(k.keys, key)
		}
	}
}

// retryAfter is the Retry-After value (whole seconds, at least 1) for d.
func retryAfter(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
