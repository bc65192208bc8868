package submit

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/starttls-preload/starttls-preload/validate"
)

// Checker runs the live check of one domain. Its error means the checker
// could not work (a cancelled context); what the domain does wrong is in
// the result's findings.
type Checker interface {
	Check(ctx context.Context, domain string) (*validate.Result, error)
}

var (
	_ Checker = (*validate.Validator)(nil)
	_ Checker = (*validate.Round)(nil)
)

// maxCached bounds the domains whose result is kept.
const maxCached = 10_000

// maxLiveChecks bounds the live checks in flight for the whole door: the
// per-address and per-domain limits alone let visitors from many
// addresses, each asking for other domains, start unbounded work.
const maxLiveChecks = 64

// errChecksBusy: as many live checks as the door runs at once are in
// flight; none was started.
var errChecksBusy = errors.New("submit: too many live checks in flight")

// checkCache keeps each domain's result for ttl and runs at most one check
// of a domain at a time: concurrent requests for one domain wait for the
// one check in flight, so a flood of checks reaches the MX hosts once.
type checkCache struct {
	c       Checker
	ttl     time.Duration
	timeout time.Duration // of one check, whoever waits for it
	now     func() time.Time

	// maxInFlight bounds the checks running at once (errChecksBusy
	// beyond); inFlight counts them.
	maxInFlight int

	mu       sync.Mutex
	m        map[string]*checkEntry
	inFlight int
}

type checkEntry struct {
	done chan struct{} // closed when res/err are set
	res  *validate.Result
	err  error
	at   time.Time // when the check finished
}

func newCheckCache(c Checker, ttl, timeout time.Duration, now func() time.Time) *checkCache {
	return &checkCache{c: c, ttl: ttl, timeout: timeout, now: now, m: map[string]*checkEntry{}, maxInFlight: maxLiveChecks}
}

// cached returns the domain's result if one is fresh, without checking.
func (cc *checkCache) cached(domain string) (*validate.Result, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	e := cc.m[domain]
	if e == nil || !cc.fresh(e) {
		return nil, false
	}
	return e.res, true
}

// fresh reports whether e is in flight or finished less than ttl ago
// without error. Call with mu held.
func (cc *checkCache) fresh(e *checkEntry) bool {
	select {
	case <-e.done:
		return e.err == nil && cc.now().Sub(e.at) < cc.ttl
	default:
		return true
	}
}

// get returns the domain's result: a fresh cached one, the one of the
// check in flight, or that of a new check. started reports whether this
// call started a check (and so counts against the domain's limit); allow
// is asked before a check starts and may refuse it.
func (cc *checkCache) get(ctx context.Context, domain string, allow func() error) (res *validate.Result, started bool, err error) {
	cc.mu.Lock()
	e := cc.m[domain]
	if e == nil || !cc.fresh(e) {
		if cc.maxInFlight > 0 && cc.inFlight >= cc.maxInFlight {
			cc.mu.Unlock()
			return nil, false, errChecksBusy
		}
		if err := allow(); err != nil {
			cc.mu.Unlock()
			return nil, false, err
		}
		if len(cc.m) >= maxCached {
			cc.prune()
		}
		e = &checkEntry{done: make(chan struct{})}
		cc.m[domain] = e
		cc.inFlight++
		started = true
		// The check outlives the request that started it: others may
		// be waiting for it.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cc.timeout)
		go func() {
			defer cancel()
			r, err := cc.c.Check(cctx, domain)
			cc.mu.Lock()
			e.res, e.err, e.at = r, err, cc.now()
			cc.inFlight--
			if err != nil && cc.m[domain] == e {
				delete(cc.m, domain)
			}
			cc.mu.Unlock()
			close(e.done)
		}()
	}
	cc.mu.Unlock()
	select {
	case <-e.done:
		return e.res, started, e.err
	case <-ctx.Done():
		return nil, started, ctx.Err()
	}
}

// prune drops finished entries that are stale, then, if still full, every
// finished entry. Call with mu held.
func (cc *checkCache) prune() {
	for d, e := range cc.m {
		if !cc.fresh(e) {
			delete(cc.m, d)
		}
	}
	if len(cc.m) < maxCached {
		return
	}
	for d, e := range cc.m {
		select {
		case <-e.done:
			delete(cc.m, d)
		default:
		}
	}
}
