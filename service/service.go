// Package service is the long-running service below `serve` and `worker`:
// rounds of checks, the signed list kept current, the check history
// pruned, periodic jobs (DNS ownership proofs retried, pull requests
// watched), and the HTTP routes of the list, the status API and the doors.
// cmd/starttls-preload only reads the configuration, builds the parts and
// hands them to New.
//
// # The loop
//
// Run repeats Tick and then sleeps until the next thing falls due:
//
//   - the next domain check (store.Store.NextDue), so that a domain is
//     checked within a small fraction of admission.check_interval after it
//     falls due, whatever the interval;
//   - the next periodic job;
//   - the next look at the list (at most MaxWait after the last one: the
//     list is signed again before it expires, and an operator's change made
//     between rounds is published).
//
// The sleep is at least MinWait (no busy loop when domains fall due one
// after another) and at most MaxWait. Tick runs one round of the due
// checks, publishes a new list when the round changed the listed domains or
// their policies or when the last look is MaxWait old, prunes the history
// once a day, and meanwhile runs the jobs that are due, one after another.
// A failure of one part is logged and does not stop the others or the
// loop. A job runs at the first tick, then at the first tick at least Every
// after its last start; it must be safe to run beside a round (the store
// is, with its compare-and-set transitions).
//
// # Routes
//
// The HTTP handler is one net/http.ServeMux composed from an ordered list
// of Route (Go 1.22 patterns: an optional method, a host-less path,
// wildcards). The service's own routes come first:
//
//	GET /metrics     Prometheus metrics
//	/api/v1/         the domains' status API (admission): /api/v1/domains, /api/v1/domains/{domain}, JSON 404 for the rest
//	/                the signed list and its keys (publish): /policy-list.json, .sig, .sshsig, /pubkey.pem, /allowed_signers, /v/{serial}/…
//
// Config.Routes follow. ServeMux sends a request to the most specific
// pattern, so a door adds pages and API routes beside these without
// replacing them: "GET /{$}" (the home page; "/" stays the list's),
// "/check", "/domains/", "/list", "/stats", "/confirm/", "GET /api/v1/check",
// "POST /api/v1/submissions", "POST /api/v1/domains/{domain}/verify" (more
// specific than "/api/v1/"). A pattern registered twice, or two patterns
// that overlap without one being more specific, is an error from New (and
// from NewMux), never a panic; so is a route without a handler.
package service

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
)

// Errors of the service.
var (
	// ErrConfig: New was given a configuration it cannot run.
	ErrConfig = errors.New("service: bad configuration")
	// ErrRoute: two routes conflict, or a route is malformed.
	ErrRoute = errors.New("service: conflicting or malformed route")
)

// Route is one handler of the service's HTTP server.
type Route struct {
	// Pattern is a net/http.ServeMux pattern: "[METHOD ]/path", with
	// {wildcards}, {name...} and {$} as in Go 1.22.
	Pattern string
	Handler http.Handler
}

// Job is work the loop does periodically beside the rounds (the lifecycle's
// RetryPendingDNS, the pull-request watcher).
type Job struct {
	Name  string                          // in logs
	Every time.Duration                   // the time between two starts; > 0
	Run   func(ctx context.Context) error // an error is logged; the job runs again after Every
}

// Config is what New needs. Store is required; the other parts are
// optional, so that `worker` (rounds only) and `serve` (everything) share
// the loop.
type Config struct {
	Store store.Store
	// Scheduler runs the rounds of checks; nil: none.
	Scheduler *admission.Scheduler
	// Builder publishes the signed list; nil: this process does not
	// publish (a worker beside a serve process).
	Builder *admission.ListBuilder
	// KeepHistory is how long checks are kept: older ones are pruned once
	// a day. Zero: kept for ever (and a worker leaves it to serve).
	KeepHistory time.Duration
	// Jobs run beside the rounds, each when its Every has passed.
	Jobs []Job

	// Archive, Keys, Rules and Metrics make the service's own routes:
	// with an Archive, the list and its keys at "/" and the status API at
	// "/api/v1/"; with Metrics, "GET /metrics". Nil Archive: no routes but
	// Metrics and Routes.
	Archive publish.Source
	Keys    Keys
	Rules   admission.Rules
	Metrics prometheus.Gatherer
	// Routes are added after the service's own (see the package doc).
	Routes []Route
	// Wrap, when set, wraps the whole handler (every route and the
	// router's own 404, 405 and redirect answers): serve puts the web
	// door's security headers on every answer with it.
	Wrap func(http.Handler) http.Handler

	// Now is the clock and Sleep waits (tests inject both, Sleep moving
	// the clock); nil: the wall clock and a timer.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// MinWait and MaxWait bound the sleep between ticks (1 s and 1 min by
	// default). MinWait should be a small fraction of the shortest check
	// interval (cmd uses a tenth, at most 1 s).
	MinWait time.Duration
	MaxWait time.Duration

	// AfterTick, when set, is called after every tick of Run with its
	// error (the worker tells its tests of each round through it).
	AfterTick func(err error)
	Log       *slog.Logger
}

// Service is the loop and the HTTP handler.
type Service struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler

	// The loop's own state, touched by Tick only (one goroutine).
	pruned      time.Time   // last pruning
	nextPublish time.Time   // next look at the list without a reason
	jobNext     []time.Time // next start of each job (zero: at the next tick)
}

// New checks cfg, fills in defaults and composes the routes.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: no store", ErrConfig)
	}
	for _, j := range cfg.Jobs {
		if j.Run == nil || j.Every <= 0 {
			return nil, fmt.Errorf("%w: job %q needs a function and a positive period", ErrConfig, j.Name)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sleep == nil {
		cfg.Sleep = admission.Sleep
	}
	if cfg.MinWait <= 0 {
		cfg.MinWait = time.Second
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = time.Minute
	}
	cfg.MinWait = min(cfg.MinWait, cfg.MaxWait)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Service{cfg: cfg, log: cfg.Log, jobNext: make([]time.Time, len(cfg.Jobs))}
	mux, err := NewMux(slices.Concat(s.ownRoutes(), cfg.Routes))
	if err != nil {
		return nil, err
	}
	s.handler = mux
	if cfg.Wrap != nil {
		s.handler = cfg.Wrap(mux)
	}
	return s, nil
}

// ownRoutes are the service's routes (see the package doc).
func (s *Service) ownRoutes() []Route {
	var rs []Route
	if s.cfg.Metrics != nil {
		rs = append(rs, Route{"GET /metrics", promhttp.HandlerFor(s.cfg.Metrics, promhttp.HandlerOpts{})})
	}
	if s.cfg.Archive != nil {
		rs = append(rs,
			Route{"/api/v1/", admission.NewStatusHandler(s.cfg.Store, s.cfg.Rules)},
			Route{"/", publish.NewHandler(s.cfg.Archive, s.cfg.Keys.PubPEM, s.cfg.Keys.Allowed)},
		)
	}
	return rs
}

// NewMux registers routes in order on a new ServeMux. A conflicting or
// malformed pattern is an ErrRoute naming it, not a panic.
func NewMux(routes []Route) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	for _, r := range routes {
		if err := handle(mux, r); err != nil {
			return nil, err
		}
	}
	return mux, nil
}

func handle(mux *http.ServeMux, r Route) (err error) {
	if r.Handler == nil {
		return fmt.Errorf("%w: %q has no handler", ErrRoute, r.Pattern)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %q: %v", ErrRoute, r.Pattern, p)
		}
	}()
	mux.Handle(r.Pattern, r.Handler)
	return nil
}

// Handler is the service's HTTP handler: its routes and Config.Routes.
func (s *Service) Handler() http.Handler { return s.handler }

// Tick runs one round of the due checks, publishes a new list when needed,
// prunes the history once a day and runs the jobs that are due: the jobs
// one after another in their order, beside the round, so that neither
// waits for the other within a tick. The errors of the parts are joined;
// each part runs whatever the others did.
func (s *Service) Tick(ctx context.Context) error {
	now := s.cfg.Now()
	var jobErrs []error
	jobsDone := make(chan struct{})
	var due []Job
	for i, j := range s.cfg.Jobs {
		if !now.Before(s.jobNext[i]) {
			s.jobNext[i] = now.Add(j.Every)
			due = append(due, j)
		}
	}
	go func() {
		defer close(jobsDone)
		for _, j := range due {
			if err := j.Run(ctx); err != nil {
				jobErrs = append(jobErrs, fmt.Errorf("%s: %w", j.Name, err))
			}
		}
	}()

	var errs []error
	changed := false
	if s.cfg.Scheduler != nil {
		stats, err := s.cfg.Scheduler.RunRound(ctx)
		switch {
		case err != nil:
			// The list is looked at below anyway: it must be signed
			// again before it expires, whatever happens to the checks.
			errs = append(errs, fmt.Errorf("round: %w", err))
		case stats.Claimed > 0:
			s.log.InfoContext(ctx, "round", "claimed", stats.Claimed, "checked", stats.Checked, "passed", stats.Passed,
				"failed", stats.Failed, "errors", stats.Errors, "skipped", stats.Skipped, "transitions", stats.Transitions)
		}
		changed = stats.ListChanged
	}
	now = s.cfg.Now()
	if s.cfg.Builder != nil && (changed || !now.Before(s.nextPublish)) {
		// Publish compares the policies with the current list itself:
		// a domain removed by an operator between rounds is caught too.
		if _, err := s.cfg.Builder.Publish(ctx, false); err != nil {
			errs = append(errs, err)
		} else {
			s.nextPublish = now.Add(s.cfg.MaxWait)
		}
	}
	// Once a day, checks older than the history kept are deleted.
	if keep := s.cfg.KeepHistory; keep > 0 && now.Sub(s.pruned) >= 24*time.Hour {
		n, err := s.cfg.Store.PruneChecks(ctx, now.Add(-keep))
		if err != nil {
			errs = append(errs, fmt.Errorf("pruning checks: %w", err))
		} else {
			s.pruned = now
			if n > 0 {
				s.log.InfoContext(ctx, "check history pruned", "checks", n, "before", now.Add(-keep))
			}
		}
	}
	<-jobsDone
	return errors.Join(append(errs, jobErrs...)...)
}

// NextWait is how long Run sleeps after a tick: until the next domain
// check, job or look at the list falls due, at least MinWait and at most
// MaxWait.
func (s *Service) NextWait(ctx context.Context) time.Duration {
	now := s.cfg.Now()
	next := now.Add(s.cfg.MaxWait)
	if s.cfg.Scheduler != nil {
		due, err := s.cfg.Store.NextDue(ctx)
		switch {
		case err == nil:
			next = minTime(next, due)
		case errors.Is(err, store.ErrNotFound):
		case ctx.Err() == nil:
			s.log.WarnContext(ctx, "next due check unknown", "err", err)
		}
	}
	if s.cfg.Builder != nil && !s.nextPublish.IsZero() {
		next = minTime(next, s.nextPublish)
	}
	for _, t := range s.jobNext {
		next = minTime(next, t)
	}
	return min(max(next.Sub(now), s.cfg.MinWait), s.cfg.MaxWait)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// Run ticks until ctx ends, sleeping NextWait between ticks. It returns
// nil when ctx ends: a failing tick is logged, not fatal.
func (s *Service) Run(ctx context.Context) error {
	for {
		err := s.Tick(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.ErrorContext(ctx, "tick failed", "err", err)
		}
		if s.cfg.AfterTick != nil {
			s.cfg.AfterTick(err)
		}
		if err := s.cfg.Sleep(ctx, s.NextWait(ctx)); err != nil || ctx.Err() != nil {
			return nil
		}
	}
}

// PublishStart publishes the list the service starts with: a new one when
// the policies changed or the current list nears its expiry, as every tick
// does, and at once when the current list is not signed by the list
// signing key (the operator just switched to the next key), so that the
// new key signs the list served from the start. It returns the serial
// published (0: none). Without a Builder it does nothing.
func (s *Service) PublishStart(ctx context.Context) (int64, error) {
	b := s.cfg.Builder
	if b == nil {
		return 0, nil
	}
	force := false
	if cur, err := b.Archive.Current(ctx); err == nil && listgen.VerifyBlob(b.Signer.Public(), cur.List, cur.Sig) != nil {
		s.log.InfoContext(ctx, "the current list is not signed by the list signing key: signing a new one",
			"serial", cur.Serial, "key", listgen.Fingerprint(b.Signer.Public()))
		force = true
	}
	serial, err := b.Publish(ctx, force)
	if err == nil {
		s.nextPublish = s.cfg.Now().Add(s.cfg.MaxWait)
	}
	return serial, err
}

// Serve serves the handler on ln and runs the loop until ctx ends, then
// shuts the server down (waiting up to 10 s for requests in flight) and
// waits for the loop. A server that fails stops the loop and is the error.
func (s *Service) Serve(ctx context.Context, ln net.Listener) error {
	srv := NewHTTPServer(s.handler)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	loopCtx, stop := context.WithCancel(ctx)
	defer stop()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.Run(loopCtx)
	}()
	var err error
	select {
	case err = <-served:
		err = fmt.Errorf("service: http server: %w", err)
	case <-ctx.Done():
		s.log.Info("shutting down")
		shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if e := srv.Shutdown(shCtx); e != nil {
			s.log.Warn("shutdown", "err", e)
		}
		cancel()
		if e := <-served; e != nil && !errors.Is(e, http.ErrServerClosed) {
			err = fmt.Errorf("service: http server: %w", e)
		}
	}
	stop()
	<-loopDone
	return err
}

// NewHTTPServer returns a server of h with timeouts on every phase.
func NewHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // a list of a million domains is 150 MB
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(slog.Default().Handler(), slog.LevelWarn),
	}
}

// Keys are the list signing key and the public key files the service
// publishes (/pubkey.pem, /allowed_signers): the signing key's, then the
// next keys announced.
type Keys struct {
	Signer  crypto.Signer
	PubPEM  []byte
	Allowed string
}
