package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/store"
)

// benchFindings is the size of a typical check's findings.
var benchFindings = json.RawMessage(`{"domain":"bench.example","eligible":true,"dnssec":false,"mxs":[{"host":"mx1.provider.example","preference":10,"addresses":[{"ip":"192.0.2.10","ok":true,"tls_version":"TLS 1.3","cipher":"TLS_AES_128_GCM_SHA256","cert_subject":"CN=mx1.provider.example","cert_issuer":"CN=Example CA","cert_not_after":"2026-09-01T00:00:00Z"}]}],"findings":[],"checked_at":"2026-05-01T00:00:00Z"}`)

func seed(b *testing.B, s store.Store, n int) {
	b.Helper()
	ctx := context.Background()
	ds := make([]store.Domain, n)
	for i := range ds {
		ds[i] = store.Domain{Name: fmt.Sprintf("b%06d.example", i), State: store.StateTesting,
			MXPatterns: []string{"mx1.provider.example"}, CreatedAt: T0, NextCheck: T0}
	}
	errs, err := s.AddDomains(ctx, ds)
	if err == nil {
		err = errors.Join(errs...)
	}
	if err != nil {
		b.Fatal(err)
	}
}

func update(name string, at time.Time) store.CheckUpdate {
	return store.CheckUpdate{
		Check:        store.CheckRecord{Domain: name, At: at, Eligible: true, MXHosts: []string{"mx1.provider.example"}, Findings: benchFindings},
		NextCheck:    at.Add(6 * time.Hour),
		ChecksPassed: 1,
		PassingSince: &at,
	}
}

// Bench runs the store benchmarks against the stores open returns:
// RecordCheck (one check per transaction), RecordChecks (100 per
// transaction), ClaimDue (100 domains per claim, over 10,000 due),
// AddDomains (1,000 per transaction) and ListDomains (10,000 listed
// domains, as the list generator reads them).
// Each reports transactions per second (tx/s) and, where it differs,
// checks or claimed domains per second.
func Bench(b *testing.B, open func(b *testing.B) store.Store) {
	const domains = 1000
	b.Run("RecordCheck", func(b *testing.B) {
		s := open(b)
		seed(b, s, domains)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			if err := s.RecordCheck(ctx, update(fmt.Sprintf("b%06d.example", i%domains), T0.Add(time.Duration(i)*time.Second))); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
	})
	b.Run("RecordChecks100", func(b *testing.B) {
		s := open(b)
		seed(b, s, domains)
		ctx := context.Background()
		us := make([]store.CheckUpdate, 100)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			for k := range us {
				us[k] = update(fmt.Sprintf("b%06d.example", (i*100+k)%domains), T0.Add(time.Duration(i)*time.Second))
			}
			errs, err := s.RecordChecks(ctx, us)
			if err != nil {
				b.Fatal(err)
			}
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "checks/s")
	})
	b.Run("ClaimDue100", func(b *testing.B) {
		s := open(b)
		seed(b, s, 10*domains)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			// Each claim happens after the previous lease expired, so it
			// always finds 100 due domains among the 10,000.
			got, err := s.ClaimDue(ctx, "bench", T0.Add(time.Duration(i)*time.Hour), 100, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if len(got) != 100 {
				b.Fatalf("claimed %d", len(got))
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
		b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "claims/s")
	})
	b.Run("AddDomains1000", func(b *testing.B) {
		s := open(b)
		ctx := context.Background()
		ds := make([]store.Domain, 1000)
		for i := 0; b.Loop(); i++ {
			for k := range ds {
				ds[k] = store.Domain{Name: fmt.Sprintf("a%d-%d.example", i, k), State: store.StatePending,
					MXPatterns: []string{"mx1.provider.example"}, CreatedAt: T0, NextCheck: T0}
			}
			if _, err := s.AddDomains(ctx, ds); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "domains/s")
	})
	b.Run("ListDomains10000", func(b *testing.B) {
		s := open(b)
		seed(b, s, 10*domains)
		ctx := context.Background()
		b.ResetTimer()
		for b.Loop() {
			ds, err := s.ListDomains(ctx, store.Filter{States: []store.State{store.StateTesting, store.StateEnforce}})
			if err != nil {
				b.Fatal(err)
			}
			if len(ds) != 10*domains {
				b.Fatalf("listed %d", len(ds))
			}
		}
		b.ReportMetric(float64(b.N*10*domains)/b.Elapsed().Seconds(), "domains/s")
	})
}
