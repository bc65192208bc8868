package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/benchseed"
	"github.com/starttls-preload/starttls-preload/store/backend"
)

// seedCmd fills a store with listed domains (see package benchseed).
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
	return benchseed.Seed(ctx, st, *n, *checks, start, func(done int) {
		if done%20000 == 0 || done == *n {
			fmt.Fprintf(os.Stderr, "seeded %d domains (%s)\n", done, time.Since(start).Round(time.Second))
		}
	})
}
