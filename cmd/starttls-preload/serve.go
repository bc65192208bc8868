package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
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
domains' status (/api/v1/domains) and Prometheus metrics (/metrics).

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

// serveApp is the service's parts, built by newServeApp so that tests can
// run them with an injected clock and a lab network.
type serveApp struct {
	store   store.Store
	sched   *admission.Scheduler
	builder *admission.ListBuilder
	handler http.Handler
	poll    time.Duration
	now     func() time.Time
	keep    time.Duration // check history kept
	pruned  time.Time     // last pruning

	closeNotify func() error // sends the mail still queued
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
	if deps.notifier == nil {
		n, _, closeN, err := newNotifier(c, metrics)
		if err != nil {
			return fail(err)
		}
		deps.notifier, closeNotify = n, closeN
	}
	sched, err := newScheduler(c, st, metrics, workerName("serve"), deps)
	if err != nil {
		return fail(err)
	}
	signer, pubPEM, allowed, err := listSigner(c)
	if err != nil {
		return fail(err)
	}
	archDir := c.Publish.Archive
	if archDir == "" {
		archDir = filepath.Join(c.DataDir, "archive")
	}
	arch, err := publish.OpenArchive(archDir)
	if err != nil {
		return fail(failf("%v", err))
	}
	now := deps.now
	if now == nil {
		now = time.Now
	}
	app := &serveApp{
		store: st,
		sched: sched,
		builder: &admission.ListBuilder{
			Store: st, Archive: arch, Signer: signer, Now: now,
			Validity: c.List.Validity, Author: c.List.Author, Metrics: metrics, Log: slog.Default(),
		},
		handler: newMux(serviceRoutes(arch, pubPEM, allowed, st, rulesOf(c), reg)),
		poll:    min(time.Minute, c.Admission.ListedInterval/4),
		now:     now,
		keep:    c.Admission.KeepHistory,

		closeNotify: closeNotify,
	}
	return app, nil
}

// tick runs one round of checks and publishes a new list if needed.
func (a *serveApp) tick(ctx context.Context) error {
	stats, roundErr := a.sched.RunRound(ctx)
	if roundErr != nil {
		// Publish anyway: the current list must be signed again before
		// it expires, whatever happens to the checks.
		roundErr = fmt.Errorf("round: %w", roundErr)
	} else if stats.Claimed > 0 {
		slog.InfoContext(ctx, "round", "claimed", stats.Claimed, "checked", stats.Checked, "passed", stats.Passed,
			"failed", stats.Failed, "errors", stats.Errors, "skipped", stats.Skipped, "transitions", stats.Transitions)
	}
	// Publish compares the policies with the current list itself: a
	// domain removed by an operator between rounds is caught too.
	if _, err := a.builder.Publish(ctx, false); err != nil {
		return errors.Join(roundErr, err)
	}
	// Once a day, checks older than the history kept are deleted.
	if now := a.now(); a.keep > 0 && now.Sub(a.pruned) >= 24*time.Hour {
		n, err := a.store.PruneChecks(ctx, now.Add(-a.keep))
		if err != nil {
			return errors.Join(roundErr, err)
		}
		a.pruned = now
		if n > 0 {
			slog.InfoContext(ctx, "check history pruned", "checks", n, "before", now.Add(-a.keep))
		}
	}
	return roundErr
}

// publishStart publishes the list serve starts with: a new one when the
// policies changed or the current list nears its expiry, as every tick
// does, and at once when the current list is not signed by list.key (the
// operator just switched to the next key), so that the new key signs the
// list that is served from the start.
func (a *serveApp) publishStart(ctx context.Context) (int64, error) {
	force := false
	if cur, err := a.builder.Archive.Current(ctx); err == nil && listgen.VerifyBlob(a.builder.Signer.Public(), cur.List, cur.Sig) != nil {
		slog.InfoContext(ctx, "the current list is not signed by the list signing key: signing a new one",
			"serial", cur.Serial, "key", listgen.Fingerprint(a.builder.Signer.Public()))
		force = true
	}
	return a.builder.Publish(ctx, force)
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
	if _, err := app.publishStart(ctx); err != nil {
		return failf("publishing the first list: %v", err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return usagef("listen: %v", err)
	}
	srv := newHTTPServer(app.handler)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	slog.Info("serving", "listen", "http://"+ln.Addr().String(), "data_dir", c.DataDir, "store", c.Store.Driver)
	if serveStarted != nil {
		serveStarted(ln.Addr().String())
	}

	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		t := time.NewTicker(app.poll)
		defer t.Stop()
		for {
			if err := app.tick(ctx); err != nil && ctx.Err() == nil {
				slog.Error("tick failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()

	select {
	case err := <-served:
		return failf("http server: %v", err)
	case <-ctx.Done():
	}
	slog.Info("shutting down")
	shCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shCtx); err != nil {
		slog.Warn("shutdown", "err", err)
	}
	<-loopDone
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return failf("http server: %v", err)
	}
	return nil
}

// serveStarted, when set (by tests), is told the address serve listens on.
var serveStarted func(addr string)

// newHTTPServer returns a server with timeouts on every phase.
func newHTTPServer(h http.Handler) *http.Server {
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
