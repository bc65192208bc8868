package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/backend"
)

// SeedName is the name of seeded domain i: d42.bench.test (RFC 6761
// .test: the service needs list.allow_test_tld).
func SeedName(i int) string { return fmt.Sprintf("d%d.bench.test", i) }

// seedCmd fills a store with listed domains: each added as validating,
// given -checks passing checks six hours apart, admitted to testing with
// the last one (a decision), and every tenth promoted to enforce. None is
// due again for a year, so a service started on the store checks none.
func seedCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "data directory of the SQLite store (created)")
	driver := fs.String("driver", "sqlite", "store driver (sqlite, postgres)")
	dsn := fs.String("dsn", "", "store DSN (postgres)")
	n := fs.Int("domains", 100000, "domains to add")
	checks := fs.Int("checks", 4, "checks recorded per domain")
	fs.Parse(args)
	if *dataDir == "" || *n < 1 || *checks < 1 || fs.NArg() > 0 {
		return fmt.Errorf("seed needs -data-dir, -domains ≥ 1, -checks ≥ 1")
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	st, err := backend.Open(ctx, backend.Config{Driver: *driver, DSN: *dsn, DataDir: *dataDir})
	if err != nil {
		return err
	}
	defer st.Close()

	start := time.Now()
	t0 := start.Add(-time.Duration(*checks) * 6 * time.Hour).UTC().Truncate(time.Second)
	next := start.Add(365 * 24 * time.Hour).UTC()
	const batch = 2000
	for lo := 0; lo < *n; lo += batch {
		hi := min(lo+batch, *n)
		var ds []store.Domain
		for i := lo; i < hi; i++ {
			ds = append(ds, store.Domain{Name: SeedName(i), State: store.StateValidating, Source: "operator",
				MXPatterns: []string{"mx1." + SeedName(i), "*.mx.bench.test"}, NextCheck: next, CreatedAt: t0})
		}
		if err := all(st.AddDomains(ctx, ds)); err != nil {
			return fmt.Errorf("adding domains: %w", err)
		}
		for k := range *checks {
			at := t0.Add(time.Duration(k) * 6 * time.Hour)
			var us []store.CheckUpdate
			for i := lo; i < hi; i++ {
				u := store.CheckUpdate{
					Check:     store.CheckRecord{Domain: SeedName(i), At: at, Eligible: true, MXHosts: []string{"mx1." + SeedName(i)}, Findings: findings(SeedName(i), at)},
					NextCheck: next, ChecksPassed: k + 1, PassingSince: &t0,
				}
				if k == *checks-1 {
					u.Transition = &store.Transition{From: store.StateValidating, To: store.StateTesting, Reason: admission.CodeAdmitted}
				}
				us = append(us, u)
			}
			if err := all(st.RecordChecks(ctx, us)); err != nil {
				return fmt.Errorf("recording checks: %w", err)
			}
		}
		for i := lo; i < hi; i += 10 {
			if err := st.Transition(ctx, SeedName(i), store.StateTesting, store.StateEnforce, admission.CodePromoted, start.UTC()); err != nil {
				return fmt.Errorf("promoting: %w", err)
			}
		}
		if hi%20000 == 0 || hi == *n {
			fmt.Fprintf(os.Stderr, "seeded %d domains (%s)\n", hi, time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// all joins a batch's errors.
func all(errs []error, err error) error {
	if err != nil {
		return err
	}
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// findings is a passing check's result as `check --json` prints it.
func findings(domain string, at time.Time) json.RawMessage {
	mx := "mx1." + domain
	v := map[string]any{
		"domain": domain, "eligible": true, "dnssec": false,
		"mxs": []any{map[string]any{"host": mx, "preference": 10, "addresses": []any{map[string]any{
			"ip": "192.0.2.25", "ok": true, "tls_version": "TLS 1.3", "cipher": "TLS_AES_128_GCM_SHA256",
			"cert_subject": "CN=" + mx, "cert_issuer": "CN=Bench CA", "cert_not_after": at.Add(60 * 24 * time.Hour).Format(time.RFC3339),
		}}}},
		"findings": []any{map[string]any{"code": "tlsrpt.not_published", "severity": "info", "summary": "No TLS-RPT record",
			"message": domain + " publishes no TLS-RPT record."}},
		"checked_at": at.Format(time.RFC3339),
	}
	b, _ := json.Marshal(v)
	return b
}
