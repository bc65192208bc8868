// Package benchseed fills a store with listed domains as a long-running
// service would hold them, for the web speed figures (cmd/loadgen seed,
// the web benchmarks of cmd/starttls-preload): each domain added as
// validating, given passing checks six hours apart (their findings stored
// as the scheduler stores them), admitted to testing with the last one (a
// decision), and every tenth promoted to enforce. None is due again for a
// year, so a service started on the store checks none of them.
package benchseed

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/validate"
)

// Name is the name of seeded domain i: d42.bench.test (RFC 6761 .test: the
// service needs list.allow_test_tld).
func Name(i int) string { return fmt.Sprintf("d%d.bench.test", i) }

// Seed adds domains Name(0) … Name(n-1) with checks checks each, as of
// now, and calls progress (if not nil) after each batch.
func Seed(ctx context.Context, st store.Store, n, checks int, now time.Time, progress func(done int)) error {
	if n < 1 || checks < 1 {
		return fmt.Errorf("benchseed: n and checks must be at least 1")
	}
	t0 := now.Add(-time.Duration(checks) * 6 * time.Hour).UTC().Truncate(time.Second)
	next := now.Add(365 * 24 * time.Hour).UTC()
	const batch = 2000
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		var ds []store.Domain
		for i := lo; i < hi; i++ {
			ds = append(ds, store.Domain{Name: Name(i), State: store.StateValidating, Source: "operator",
				MXPatterns: []string{"mx1." + Name(i), "*.mx.bench.test"}, NextCheck: next, CreatedAt: t0})
		}
		if err := all(st.AddDomains(ctx, ds)); err != nil {
			return fmt.Errorf("benchseed: adding domains: %w", err)
		}
		for k := range checks {
			at := t0.Add(time.Duration(k) * 6 * time.Hour)
			var us []store.CheckUpdate
			for i := lo; i < hi; i++ {
				u := store.CheckUpdate{
					Check:     store.CheckRecord{Domain: Name(i), At: at, Eligible: true, MXHosts: []string{"mx1." + Name(i)}, Findings: findings(Name(i))},
					NextCheck: next, ChecksPassed: k + 1, PassingSince: &t0,
				}
				if k == checks-1 {
					u.Transition = &store.Transition{From: store.StateValidating, To: store.StateTesting, Reason: admission.CodeAdmitted}
				}
				us = append(us, u)
			}
			if err := all(st.RecordChecks(ctx, us)); err != nil {
				return fmt.Errorf("benchseed: recording checks: %w", err)
			}
		}
		for i := lo; i < hi; i += 10 {
			if err := st.Transition(ctx, Name(i), store.StateTesting, store.StateEnforce, admission.CodePromoted, now.UTC()); err != nil {
				return fmt.Errorf("benchseed: promoting: %w", err)
			}
		}
		if progress != nil {
			progress(hi)
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

// findings is what the scheduler stores for a passing check of a domain
// without MTA-STS and TLS-RPT: the result's findings array, two of
// severity info, worded as the validator words them.
func findings(domain string) json.RawMessage {
	b, _ := json.Marshal([]validate.Finding{
		{Code: validate.CodeMTASTSNotPublished, Severity: validate.SeverityInfo, Summary: "No MTA-STS",
			Message: domain + " publishes no MTA-STS record. Publishing MTA-STS (RFC 8461) lets senders that do not use the preload list enforce TLS too."},
		{Code: validate.CodeTLSRPTNotPublished, Severity: validate.SeverityInfo, Summary: "No TLS-RPT record",
			Message: domain + " publishes no TLS-RPT record. Publish a TLS-RPT record (RFC 8460) at _smtp._tls.<domain> to learn about TLS failures senders see."},
	})
	return b
}
