package main

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/notify"
	"github.com/starttls-preload/starttls-preload/service"
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
		MaxGap:          admission.MaxGapFor(c.Admission.CheckInterval),
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

// schedulerDeps are the parts of a scheduler and the service's loop that
// tests replace.
type schedulerDeps struct {
	now      func() time.Time
	sleep    func(ctx context.Context, d time.Duration) error // the loop's wait; nil: a timer
	notifier admission.Notifier
	dialer   admission.Dialer // under the polite dialer; nil: net.Dialer
}

// newValidator builds the checker, dialing through the polite dialer.
func newValidator(c *Config, deps schedulerDeps) (*validate.Validator, error) {
	return newValidatorWith(c, newPoliteDialer(c, deps), c.Validate.AllowPrivate)
}

// newPoliteDialer is the dialer every check goes through: a bounded number
// of connections to one MX address and a rate per provider network.
func newPoliteDialer(c *Config, deps schedulerDeps) *admission.LimitDialer {
	return &admission.LimitDialer{
		Dialer:    deps.dialer,
		PerTarget: c.Admission.ConnectionsPerIP,
		Rate:      c.Admission.ProviderRate,
		Burst:     max(1, int(c.Admission.ProviderRate)),
		Jitter:    200 * time.Millisecond,
	}
}

// newValidatorWith builds a checker over the polite dialer polite, reaching
// private addresses only when allowPrivate.
func newValidatorWith(c *Config, polite *admission.LimitDialer, allowPrivate bool) (*validate.Validator, error) {
	vcfg := c.Validate.checker()
	vcfg.AllowPrivate = allowPrivate
	vcfg.Concurrency = c.Validate.Concurrency
	vcfg.Dialer = polite
	v, err := validate.New(vcfg)
	if err != nil {
		return nil, usagef("validator: %v", err)
	}
	return v, nil
}

// newScheduler builds the scheduler of the rounds over the checker v.
func newScheduler(c *Config, st store.Store, v *validate.Validator, m *admission.Metrics, worker string, deps schedulerDeps) (*admission.Scheduler, error) {
	now := deps.now
	if now == nil {
		now = time.Now
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

// listSigner loads the list signing key (list.key, by default under the
// data directory), creating it on first run, and the key files to publish:
// the signing key, then the next key(s) announced with list.next_pubkey.
func listSigner(c *Config) (service.Keys, error) {
	path := c.listKeyPath()
	keys, created, err := service.LoadKeys(path, c.List.NextPubKey, slog.Default())
	switch {
	case errors.Is(err, service.ErrNextKey):
		return service.Keys{}, usagef("%v", err)
	case err != nil:
		return service.Keys{}, failf("%v", err)
	}
	if created {
		slog.Info("created the list signing key", "path", path)
	}
	return keys, nil
}

// publishedKeys is the signing key's public key followed by the keys of
// the list.next_pubkey file (service.PublishedKeys); a bad file is a
// usage error.
func publishedKeys(signing crypto.PublicKey, nextPath string) ([]crypto.PublicKey, error) {
	keys, err := service.PublishedKeys(signing, nextPath, slog.Default())
	if err != nil {
		return nil, usagef("%v", err)
	}
	return keys, nil
}
