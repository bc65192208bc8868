package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/notify"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/service"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/submit"
	"github.com/starttls-preload/starttls-preload/validate"
)

func init() { register(newServeCmd) }

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the service: check domains in rounds, keep the signed list and serve it",
		Long: `serve runs the whole service in one process: rounds of checks of the
domains in the store (admission, promotion, demotion), a new signed list
whenever the listed domains or their policies change or the current list
nears its expiry, and an HTTP server with the list and its signatures
(/policy-list.json, .sig, .sshsig, /pubkey.pem, /allowed_signers), the
domains' status (/api/v1/domains) and Prometheus metrics (/metrics),
and the web pages where domain owners check a domain, submit it, prove
they control it and follow it (/, /check, /domains/NAME, /list, /stats;
their JSON under /api/v1/). web.base_url is the public URL used in mails
(default: http:// and --listen); web.trusted_proxies names the reverse
proxies whose X-Forwarded-For is believed.

The store is SQLite under the data directory unless store.driver is
postgres. The list signing key is created under the data directory on
first run (mode 0600) unless list.key names one. Before switching to a new
key, announce it: list.next_pubkey names its public key file, and its key is
published after the signing key in /pubkey.pem and /allowed_signers. When
list.key has changed, serve signs a new list with it as it starts.`,
		Example: `  starttls-preload serve
  starttls-preload serve --data-dir /var/lib/starttls-preload --listen 127.0.0.1:8080
  STARTTLS_PRELOAD_STORE_DRIVER=postgres STARTTLS_PRELOAD_STORE_DSN=postgres://... starttls-preload serve`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir", "listen": "listen"})
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), c)
		},
	}
	cmd.Flags().String("data-dir", "./data", "directory of the store, the signing key and the list archive")
	cmd.Flags().String("listen", "127.0.0.1:8080", "address of the HTTP server")
	return cmd
}

// serveApp is the service as serve wires it, built by newServeApp so that
// tests can run it with an injected clock and a lab network.
type serveApp struct {
	*service.Service
	store   store.Store
	builder *admission.ListBuilder

	closeNotify func() error // sends the mail still queued
}

// serveParts are the parts a door's routes and the periodic jobs are built
// from (see doorRoutes and serviceJobs).
type serveParts struct {
	Config    *Config
	Store     store.Store
	Validator *validate.Validator // the checker (rounds, TXT look-ups)
	// WebValidator checks for visitors: the same checker and polite
	// dialer, but private addresses stay refused unless web.allow_private.
	WebValidator *validate.Validator
	Mailer       *notify.Mailer // the one mail queue; nil without notify.smtp_relay
	Rules        admission.Rules
	Keys         service.Keys
	Archive      *publish.Archive
	Registry     *prometheus.Registry
	Now          func() time.Time
}

// doorRoutes are the routes of the doors, mounted after the service's own
// (the list at "/", the status API at "/api/v1/", "GET /metrics"): pages
// at "GET /{$}", "/check", "/domains/", "/list", "/stats", "/confirm/" and
// their JSON under "/api/v1/" (see package service for how patterns
// combine).
func doorRoutes(ctx context.Context, p serveParts) ([]service.Route, error) {
	return webRoutes(ctx, p)
}

// dnsRetryEvery is how often serve looks up the TXT records of the open
// DNS ownership proofs, so that a record published after a submission
// proves it without a click, until the proof expires.
const dnsRetryEvery = 5 * time.Minute

// serviceJobs are the periodic jobs of serve beside the rounds: the DNS
// ownership proofs retried, and the pull-request door's (githubJobs).
func serviceJobs(ctx context.Context, p serveParts) ([]service.Job, error) {
	lc := &lifecycle.Lifecycle{Store: p.Store, TXT: p.Validator, Now: p.Now}
	retry := service.Job{Name: "dns proofs", Every: dnsRetryEvery, Run: func(ctx context.Context) error {
		rep, err := lc.RetryPendingDNS(ctx)
		if rep.Proven > 0 || rep.Failed > 0 {
			slog.InfoContext(ctx, "dns proofs retried", "checked", rep.Checked, "proven", rep.Proven, "failed", rep.Failed)
		}
		return err
	}}
	gh, err := githubJobs(p)
	if err != nil {
		return nil, err
	}
	return append([]service.Job{retry}, gh...), nil
}

func newServeApp(ctx context.Context, c *Config, deps schedulerDeps) (*serveApp, error) {
	if err := checkRules(c); err != nil {
		return nil, err
	}
	st, err := openStore(ctx, c)
	if err != nil {
		return nil, err
	}
	closeNotify := func() error { return nil }
	fail := func(err error) (*serveApp, error) {
		closeNotify()
		st.Close()
		return nil, err
	}
	reg, metrics := newRegistry()
	var mailer *notify.Mailer
	if deps.notifier == nil {
		n, m, closeN, err := newNotifier(c, metrics)
		if err != nil {
			return fail(err)
		}
		deps.notifier, mailer, closeNotify = n, m, closeN
	}
	polite := newPoliteDialer(c, deps)
	v, err := newValidatorWith(c, polite, c.Validate.AllowPrivate)
	if err != nil {
		return fail(err)
	}
	webV := v
	if c.Validate.AllowPrivate && !c.Web.AllowPrivate {
		if webV, err = newValidatorWith(c, polite, false); err != nil {
			return fail(err)
		}
	}
	sched, err := newScheduler(c, st, v, metrics, workerName("serve"), deps)
	if err != nil {
		return fail(err)
	}
	keys, err := listSigner(c)
	if err != nil {
		return fail(err)
	}
	archDir := c.archiveDir()
	arch, err := publish.OpenArchive(archDir)
	if err != nil {
		return fail(failf("%v", err))
	}
	// serve is its archive's one writer: its own lists are current at
	// once, and DIR/current is looked at again at most every second, not
	// on every status page and list request.
	arch.SetRecheck(time.Second)
	now := deps.now
	if now == nil {
		now = time.Now
	}
	parts := serveParts{Config: c, Store: st, Validator: v, WebValidator: webV, Mailer: mailer, Rules: rulesOf(c), Keys: keys, Archive: arch, Registry: reg, Now: now}
	routes, err := doorRoutes(ctx, parts)
	if err != nil {
		return fail(err)
	}
	jobs, err := serviceJobs(ctx, parts)
	if err != nil {
		return fail(err)
	}
	builder := &admission.ListBuilder{
		Store: st, Archive: arch, Signer: keys.Signer, Now: now,
		Validity: c.List.Validity, Author: c.List.Author, Metrics: metrics, Log: slog.Default(),
	}
	svc, err := service.New(service.Config{
		Store:       st,
		Scheduler:   sched,
		Builder:     builder,
		KeepHistory: c.Admission.KeepHistory,
		Jobs:        jobs,
		Archive:     arch,
		Keys:        keys,
		Rules:       parts.Rules,
		Metrics:     reg,
		Routes:      routes,
		Wrap:        submit.SecurityHeaders,
		Now:         now,
		Sleep:       deps.sleep,
		MinWait:     minWait(c),
		Log:         slog.Default(),
	})
	if err != nil {
		return fail(failf("%v", err))
	}
	return &serveApp{Service: svc, store: st, builder: builder, closeNotify: closeNotify}, nil
}

// minWait is the shortest sleep of the service's loop: a tenth of the
// shortest check interval, at most a second, so that a domain is checked
// within a small fraction of its interval after it falls due.
func minWait(c *Config) time.Duration {
	return min(time.Second, max(time.Millisecond, min(c.Admission.CheckInterval, c.Admission.ListedInterval)/10))
}

// Close sends the notices still queued and closes the store.
func (a *serveApp) Close() error {
	if a.closeNotify != nil {
		a.closeNotify()
	}
	return a.store.Close()
}

func runServe(ctx context.Context, c *Config) error {
	app, err := newServeApp(ctx, c, schedulerDeps{})
	if err != nil {
		return err
	}
	defer app.Close()
	if _, err := app.PublishStart(ctx); err != nil {
		return failf("publishing the first list: %v", err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return usagef("listen: %v", err)
	}
	slog.Info("serving", "listen", "http://"+ln.Addr().String(), "data_dir", c.DataDir, "store", c.Store.Driver)
	if serveStarted != nil {
		serveStarted(ln.Addr().String())
	}
	if err := app.Serve(ctx, ln); err != nil {
		return failf("%v", err)
	}
	return nil
}

// serveStarted, when set (by tests), is told the address serve listens on.
var serveStarted func(addr string)

// newHTTPServer returns a server with timeouts on every phase.
func newHTTPServer(h http.Handler) *http.Server { return service.NewHTTPServer(h) }
