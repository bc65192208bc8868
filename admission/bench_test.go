package admission

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/store"
	"github.com/starttls-preload/starttls-preload/store/memstore"
	"github.com/starttls-preload/starttls-preload/store/postgres"
	"github.com/starttls-preload/starttls-preload/store/sqlite"
	"github.com/starttls-preload/starttls-preload/validate"
)

// benchLab is the validator's lab at scale: mxHosts fake MX hosts, each on
// its own loopback address and one shared port, and a DNS server that
// gives each of the domains one of them as MX.
type benchLab struct {
	dns    *lab.DNS
	caFile string
	port   int
}

func newBenchLab(b *testing.B, domains, mxHosts int) *benchLab {
	b.Helper()
	pki := lab.NewPKI(b)
	d := lab.NewDNS(b, "127.0.0.1:0")
	cert := pki.Leaf("*.mx.bench.test")
	var port string
	var rrs []mdns.RR
	for i := range mxHosts {
		ip := fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
		addr := ip + ":0"
		if port != "" {
			addr = ip + ":" + port
		}
		mx := lab.NewMX(b, addr, lab.ModeGood, &cert)
		if port == "" {
			_, port, _ = net.SplitHostPort(mx.Addr())
		}
		rr, err := mdns.NewRR(fmt.Sprintf("mx%d.mx.bench.test. 3600 IN A %s", i, ip))
		if err != nil {
			b.Fatal(err)
		}
		rrs = append(rrs, rr)
	}
	for i := range domains {
		rrs = append(rrs, &mdns.MX{
			Hdr:        mdns.RR_Header{Name: benchDomain(i) + ".", Rrtype: mdns.TypeMX, Class: mdns.ClassINET, Ttl: 3600},
			Preference: 10, Mx: fmt.Sprintf("mx%d.mx.bench.test.", i%mxHosts),
		})
	}
	d.AddRR(rrs...)
	p, _ := strconv.Atoi(port)
	return &benchLab{dns: d, caFile: pki.WriteRootPEM(b), port: p}
}

func benchDomain(i int) string { return fmt.Sprintf("d%06d.bench.test", i) }

// benchDomains is the number of domains in the round benchmark
// (STARTTLS_PRELOAD_BENCH_DOMAINS, default 100,000).
func benchDomains() int {
	if n, err := strconv.Atoi(os.Getenv("STARTTLS_PRELOAD_BENCH_DOMAINS")); err == nil && n > 0 {
		return n
	}
	return 100000
}

// countingStore counts the store's write transactions and the time spent
// in each kind of call.
type countingStore struct {
	store.Store
	mu    sync.Mutex
	txs   int
	spent map[string]time.Duration
}

func (c *countingStore) add(what string, start time.Time, tx bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx {
		c.txs++
	}
	if c.spent == nil {
		c.spent = map[string]time.Duration{}
	}
	c.spent[what] += time.Since(start)
}

func (c *countingStore) ClaimDue(ctx context.Context, worker string, now time.Time, limit int, lease time.Duration) ([]store.Domain, error) {
	defer c.add("claim", time.Now(), true)
	return c.Store.ClaimDue(ctx, worker, now, limit, lease)
}

func (c *countingStore) RecordChecks(ctx context.Context, us []store.CheckUpdate) ([]error, error) {
	defer c.add("record", time.Now(), true)
	return c.Store.RecordChecks(ctx, us)
}

func (c *countingStore) Release(ctx context.Context, worker string, names []string, next time.Time) error {
	defer c.add("release", time.Now(), true)
	return c.Store.Release(ctx, worker, names, next)
}

func (c *countingStore) IsOptedOut(ctx context.Context, domain string) (bool, error) {
	defer c.add("opt-out reads (summed over concurrent checkers)", time.Now(), false)
	return c.Store.IsOptedOut(ctx, domain)
}

func (c *countingStore) report() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for k, v := range c.spent {
		parts = append(parts, fmt.Sprintf("%s %s", k, v.Round(time.Millisecond)))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

// BenchmarkRound is a round over 100,000 domains sharing 500 MX hosts on
// the lab network, on SQLite and on PostgreSQL: wall time, checks/s, store
// transactions/s, network connections (at most one per MX address) and the
// process's peak memory. Run it with
//
//	go test -run '^$' -bench Round -benchtime 1x ./admission
func BenchmarkRound(b *testing.B) {
	n, mxHosts := benchDomains(), 500
	l := newBenchLab(b, n, mxHosts)
	b.Run("memory", func(b *testing.B) {
		benchRound(b, l, memstore.New(), n, mxHosts)
	})
	b.Run("sqlite", func(b *testing.B) {
		st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchRound(b, l, st, n, mxHosts)
	})
	b.Run("postgres", func(b *testing.B) {
		dsn := pgtest.DSN(b)
		st, err := postgres.Open(context.Background(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		benchRound(b, l, st, n, mxHosts)
	})
}

func benchRound(b *testing.B, l *benchLab, st store.Store, n, mxHosts int) {
	ctx := context.Background()
	t0 := time.Now().UTC().Truncate(time.Second)
	seed(b, st, n, t0)

	clock := testclock.New(t0)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		counter := &netCounter{}
		cs := &countingStore{Store: st}
		v, err := validate.New(validate.Config{
			Resolver: l.dns.Addr(), CAFile: l.caFile, AllowPrivate: true, SMTPPort: l.port,
			Timeout: 10 * time.Second, Concurrency: 256, Dialer: &LimitDialer{Dialer: counter, PerTarget: 2},
		})
		if err != nil {
			b.Fatal(err)
		}
		s, err := NewScheduler(Config{Store: cs, NewRound: func() Checker { return v.NewRound() }, Now: clock.Now,
			CheckInterval: 6 * time.Hour, Concurrency: benchConcurrency(), Batch: benchBatch(), Worker: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		b.StartTimer()
		start := time.Now()
		stats, err := s.RunRound(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wall := time.Since(start)
		b.StopTimer()
		if stats.Recorded != n || stats.Passed != n {
			b.Fatalf("round: %+v, want %d recorded and passed", stats, n)
		}
		conns := 0
		for _, c := range counter.dials {
			conns += c
		}
		if conns > mxHosts {
			b.Errorf("%d connections for %d MX addresses", conns, mxHosts)
		}
		b.ReportMetric(wall.Seconds(), "s/round")
		b.ReportMetric(float64(stats.Checked)/wall.Seconds(), "checks/s")
		b.ReportMetric(float64(cs.txs)/wall.Seconds(), "store-tx/s")
		b.ReportMetric(float64(conns), "connections")
		b.ReportMetric(float64(maxRSS())/(1<<20), "peak-MiB")
		b.Logf("round %d: %d domains in %s: %d connections to %d MX addresses, %d store transactions, %d DNS queries so far; time in the store: %s",
			i, stats.Checked, wall.Round(time.Millisecond), conns, len(counter.dials), cs.txs, l.dns.Queries(), cs.report())
		clock.Add(7 * time.Hour)
		b.StartTimer()
	}
}

// maxRSS is the process's peak resident set size in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024
}

// benchConcurrency is the number of domains checked at once
// (STARTTLS_PRELOAD_BENCH_CONCURRENCY, default 8: on the loopback lab the
// checker, the DNS server and the MX hosts share two cores, and more
// concurrency only makes the lab's DNS server drop queries).
func benchConcurrency() int {
	if n, err := strconv.Atoi(os.Getenv("STARTTLS_PRELOAD_BENCH_CONCURRENCY")); err == nil && n > 0 {
		return n
	}
	return 8
}

// BenchmarkRoundStore is BenchmarkRound with a checker that answers at
// once from memory: the cost of the round's claims, rules and records
// alone, on SQLite and on PostgreSQL.
func BenchmarkRoundStore(b *testing.B) {
	n := benchDomains()
	open := map[string]func(b *testing.B) store.Store{
		"sqlite": func(b *testing.B) store.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), sqlite.FileName))
			if err != nil {
				b.Fatal(err)
			}
			return st
		},
		"postgres": func(b *testing.B) store.Store {
			st, err := postgres.Open(context.Background(), pgtest.DSN(b))
			if err != nil {
				b.Fatal(err)
			}
			return st
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		b.Run(name, func(b *testing.B) {
			st := open[name](b)
			b.Cleanup(func() { st.Close() })
			ctx := context.Background()
			t0 := time.Now().UTC().Truncate(time.Second)
			seed(b, st, n, t0)
			fc := &fakeChecker{answer: func(d string) *validate.Result { return okResult(d, "mx1.mx.bench.test") }}
			clock := testclock.New(t0)
			for b.Loop() {
				b.StopTimer()
				cs := &countingStore{Store: st}
				s, err := NewScheduler(Config{Store: cs, NewRound: fc.NewRound, Now: clock.Now,
					CheckInterval: 6 * time.Hour, Concurrency: benchConcurrency(), Batch: benchBatch(), Worker: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				stats, err := s.RunRound(ctx)
				if err != nil {
					b.Fatal(err)
				}
				wall := time.Since(start)
				b.StopTimer()
				if stats.Recorded != n {
					b.Fatalf("round: %+v", stats)
				}
				b.ReportMetric(wall.Seconds(), "s/round")
				b.ReportMetric(float64(stats.Recorded)/wall.Seconds(), "checks/s")
				b.ReportMetric(float64(cs.txs)/wall.Seconds(), "store-tx/s")
				b.Logf("%d domains in %s; time in the store: %s", n, wall.Round(time.Millisecond), cs.report())
				clock.Add(7 * time.Hour)
				b.StartTimer()
			}
		})
	}
}

// seed adds n validating domains due at t0, 1,000 a transaction.
func seed(b *testing.B, st store.Store, n int, t0 time.Time) {
	b.Helper()
	start := time.Now()
	for lo := 0; lo < n; lo += 1000 {
		var ds []store.Domain
		for i := lo; i < min(lo+1000, n); i++ {
			ds = append(ds, store.Domain{Name: benchDomain(i), State: Validating,
				MXPatterns: []string{"*.mx.bench.test"}, NextCheck: t0, CreatedAt: t0})
		}
		errs, err := st.AddDomains(context.Background(), ds)
		if err != nil {
			b.Fatal(err)
		}
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("seeded %d domains in %s", n, time.Since(start).Round(time.Millisecond))
}

// benchBatch is the number of domains claimed and recorded per store
// transaction (STARTTLS_PRELOAD_BENCH_BATCH, default 5,000, as the scheduler).
func benchBatch() int {
	if n, err := strconv.Atoi(os.Getenv("STARTTLS_PRELOAD_BENCH_BATCH")); err == nil && n > 0 {
		return n
	}
	return 5000
}
