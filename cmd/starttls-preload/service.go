package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/notify"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/backend"
	"github.com/starttls-preload/starttls-preload/validate"
)

// This file wires what serve, worker and domains share: the store, the
// rules, the checker and the scheduler.

// openStore opens the configured store.
func openStore(ctx context.Context, c *Config) (store.Store, error) {
	st, err := backend.Open(ctx, backend.Config{Driver: c.Store.Driver, DSN: c.Store.DSN, DataDir: c.DataDir})
	if errors.Is(err, backend.ErrDriver) {
		return nil, usagef("%v", err)
	}
	if err != nil {
		return nil, failf("opening the store: %v", err)
	}
	return st, nil
}

// rulesOf returns the admission rules from the configuration.
func rulesOf(c *Config) admission.Rules {
	return admission.Rules{
		MinDays:         c.Admission.MinDays,
		MinChecks:       c.Admission.MinChecks,
		PromotionPeriod: c.Admission.PromotionPeriod,
		Grace:           c.Demotion.Grace,
		RemoveAfter:     c.Demotion.RemoveAfter,
		// Checks come every check_interval, give or take the scheduler's
		// 10 % jitter: a longer gap than one and a half intervals (and
		// than a day) means checks were missed.
		MaxGap: max(24*time.Hour, c.Admission.CheckInterval*3/2),
	}
}

// checkRules refuses settings that would admit or demote nonsensically.
func checkRules(c *Config) error {
	switch {
	case c.Admission.MinDays < 0, c.Admission.MinChecks < 1:
		return usagef("admission.min_days must be ≥ 0 and admission.min_checks ≥ 1")
	case c.Admission.CheckInterval <= 0, c.Admission.ListedInterval <= 0:
		return usagef("admission.check_interval and admission.listed_interval must be positive")
	case c.Demotion.Grace < 0, c.Demotion.RemoveAfter < 0, c.Admission.PromotionPeriod < 0:
		return usagef("demotion.grace, demotion.remove_after and admission.promotion_period must not be negative")
	}
	return nil
}

// schedulerDeps are the parts of a scheduler tests replace.
type schedulerDeps struct {
	now      func() time.Time
	notifier admission.Notifier
	dialer   admission.Dialer // under the polite dialer; nil: net.Dialer
}

// newScheduler builds the checker and the scheduler for worker.
func newScheduler(c *Config, st store.Store, m *admission.Metrics, worker string, deps schedulerDeps) (*admission.Scheduler, error) {
	now := deps.now
	if now == nil {
		now = time.Now
	}
	polite := &admission.LimitDialer{
		Dialer:    deps.dialer,
		PerTarget: c.Admission.ConnectionsPerIP,
		Rate:      c.Admission.ProviderRate,
		Burst:     max(1, int(c.Admission.ProviderRate)),
		Jitter:    200 * time.Millisecond,
	}
	v, err := validate.New(validate.Config{
		Resolver:        c.Validate.Resolver,
		CAFile:          c.Validate.CAFile,
		AllowPrivate:    c.Validate.AllowPrivate,
		Timeout:         c.Validate.Timeout,
		GreetingTimeout: c.Validate.GreetingTimeout,
		SMTPPort:        c.Validate.SMTPPort,
		HELOName:        c.Validate.HELOName,
		Concurrency:     c.Validate.Concurrency,
		Dialer:          polite,
	})
	if err != nil {
		return nil, usagef("validator: %v", err)
	}
	return admission.NewScheduler(admission.Config{
		Store:          st,
		NewRound:       func() admission.Checker { return v.NewRound() },
		Now:            now,
		Rules:          rulesOf(c),
		CheckInterval:  c.Admission.CheckInterval,
		ListedInterval: c.Admission.ListedInterval,
		Worker:         worker,
		Concurrency:    c.Validate.Concurrency,
		OptOut:         c.Admission.OptOut,
		Notifier:       deps.notifier,
		Metrics:        m,
		Log:            slog.Default(),
	})
}

// newNotifier returns how notices reach contacts: the log, and mail through
// notify.smtp_relay when it is set. mailer is the one mail queue (nil
// without a relay), shared with the web door's mails; close sends the mail
// still queued.
func newNotifier(c *Config, m *admission.Metrics) (n admission.Notifier, mailer *notify.Mailer, close func() error, err error) {
	logN := admission.LogNotifier{Log: slog.Default()}
	if c.Notify.SMTPRelay == "" {
		return logN, nil, func() error { return nil }, nil
	}
	if c.Notify.From == "" {
		return nil, nil, nil, usagef("notify.from must be set with notify.smtp_relay")
	}
	host, _ := os.Hostname()
	mailer, err = notify.New(notify.Config{
		Relay:    c.Notify.SMTPRelay,
		From:     c.Notify.From,
		StartTLS: c.Notify.StartTLS,
		CAFile:   c.Notify.CAFile,
		Timeout:  c.Notify.Timeout,
		Hostname: host,
		Log:      slog.Default(),
	})
	if err != nil {
		return nil, nil, nil, usagef("%v", err)
	}
	mailN := &admission.MailNotifier{Mailer: mailer, Metrics: m, Log: slog.Default()}
	return admission.Notifiers{logN, mailN}, mailer, mailer.Close, nil
}

// workerName names this process in claims: host name and process id.
func workerName(prefix string) string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s@%s:%d", prefix, host, os.Getpid())
}

// newRegistry returns a Prometheus registry with the Go and process
// collectors and the scheduler's metrics.
func newRegistry() (*prometheus.Registry, *admission.Metrics) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg, admission.NewMetrics(reg)
}

// listSigner loads the list signing key, creating it on first run, and
// returns the key files to publish: the signing key, then the next key(s)
// announced with list.next_pubkey.
func listSigner(c *Config) (key crypto.Signer, pubPEM []byte, allowed string, err error) {
	path := c.List.Key
	if path == "" {
		path = filepath.Join(c.DataDir, "list-signing.key")
	}
	signer, created, err := admission.LoadOrCreateKey(path, "")
	if err != nil {
		return nil, nil, "", failf("%v", err)
	}
	if created {
		slog.Info("created the list signing key", "path", path)
	}
	keys, err := publishedKeys(signer.Public(), c.List.NextPubKey)
	if err != nil {
		return nil, nil, "", err
	}
	if pubPEM, err = listgen.MarshalPublicKeys(keys); err != nil {
		return nil, nil, "", failf("signing key: %v", err)
	}
	if allowed, err = listgen.AllowedSigners(keys); err != nil {
		return nil, nil, "", failf("signing key: %v", err)
	}
	return signer, pubPEM, allowed, nil
}

// publishedKeys is the signing key's public key followed by the keys of
// the list.next_pubkey file, if one is named (without repeating the
// signing key, so that the file may stay named after the switch).
func publishedKeys(signing crypto.PublicKey, nextPath string) ([]crypto.PublicKey, error) {
	keys := []crypto.PublicKey{signing}
	if nextPath == "" {
		return keys, nil
	}
	b, err := publish.ReadFileLimit(nextPath, maxKeyFileSize)
	switch {
	case errors.Is(err, publish.ErrTooLarge):
		return nil, usagef("list.next_pubkey %v", err)
	case err != nil:
		return nil, usagef("list.next_pubkey: %v", err)
	}
	next, err := listgen.ParsePublicKeys(b)
	if err != nil {
		return nil, usagef("list.next_pubkey %s: %v", nextPath, err)
	}
	cur := listgen.Fingerprint(signing)
	for _, k := range next {
		if fp := listgen.Fingerprint(k); fp != cur {
			keys = append(keys, k)
			slog.Info("announcing the next list signing key", "key", fp, "file", nextPath)
		}
	}
	if len(keys) > listgen.MaxKeys {
		return nil, usagef("list.next_pubkey %s: the signing key and the next ones are more than %d keys", nextPath, listgen.MaxKeys)
	}
	return keys, nil
}

// route is one handler of the service's HTTP server. serve composes the
// packages' handlers from a list of routes, so a new part (the web form)
// is one more entry.
type route struct {
	pattern string
	handler http.Handler
}

func newMux(routes []route) *http.ServeMux {
	mux := http.NewServeMux()
	for _, r := range routes {
		mux.Handle(r.pattern, r.handler)
	}
	return mux
}

// serviceRoutes are the routes of `serve`: the signed list and its
// renderings (publish), the domains' status (admission) and the metrics.
func serviceRoutes(arch *publish.Archive, pubPEM []byte, allowed string, st store.Store, rules admission.Rules, reg *prometheus.Registry) []route {
	return []route{
		{"GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{})},
		{"/api/v1/", admission.NewStatusHandler(st, rules)},
		{"/", publish.NewHandler(arch, pubPEM, allowed)},
	}
}
