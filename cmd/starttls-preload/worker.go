package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/service"
)

func init() { register(newWorkerCmd) }

func newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Check due domains from the shared store, without serving the list",
		Long: `worker runs rounds of checks only, for extra machines sharing the work of
a serve process through the same store (store.driver postgres): each
round claims due domains with a lease, checks them and records the
results and decisions. The serve process publishes the list.

With --metrics-listen (worker.metrics_listen) the worker serves its
Prometheus metrics (rounds, checks, queue) at /metrics on that address.`,
		Example: `  STARTTLS_PRELOAD_STORE_DRIVER=postgres STARTTLS_PRELOAD_STORE_DSN=postgres://checker@db/preload starttls-preload worker
  starttls-preload worker --once   # one round, then exit
  starttls-preload worker --metrics-listen 127.0.0.1:9108`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir", "worker.metrics_listen": "metrics-listen"})
			if err != nil {
				return err
			}
			once, _ := cmd.Flags().GetBool("once")
			return runWorker(cmd.Context(), c, once)
		},
	}
	cmd.Flags().String("data-dir", "./data", "data directory (the SQLite store lives there unless store.driver is postgres)")
	cmd.Flags().Bool("once", false, "run one round and exit")
	cmd.Flags().String("metrics-listen", "", "serve Prometheus metrics at /metrics on this address (default: none)")
	return cmd
}

func runWorker(ctx context.Context, c *Config, once bool) error {
	if err := checkRules(c); err != nil {
		return err
	}
	st, err := openStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	reg, metrics := newRegistry()
	notifier, _, closeNotify, err := newNotifier(c, metrics)
	if err != nil {
		return err
	}
	defer closeNotify()
	if c.Worker.MetricsListen != "" {
		stop, err := serveMetrics(c.Worker.MetricsListen, reg)
		if err != nil {
			return err
		}
		defer stop()
	}
	deps := schedulerDeps{notifier: notifier}
	v, err := newValidator(c, deps)
	if err != nil {
		return err
	}
	sched, err := newScheduler(c, st, v, metrics, workerName("worker"), deps)
	if err != nil {
		return err
	}
	// The pull-request watcher, when github.watcher is "worker".
	jobs, err := githubJobsFor("worker", serveParts{Config: c, Store: st, Validator: v})
	if err != nil {
		return err
	}
	// Rounds only: the serve process publishes the list and prunes.
	svc, err := service.New(service.Config{
		Store:     st,
		Scheduler: sched,
		Jobs:      jobs,
		MinWait:   minWait(c),
		AfterTick: func(error) {
			if workerRoundDone != nil {
				workerRoundDone()
			}
		},
		Log: slog.Default(),
	})
	if err != nil {
		return failf("%v", err)
	}
	if once {
		err := svc.Tick(ctx)
		if workerRoundDone != nil {
			workerRoundDone()
		}
		if err != nil && ctx.Err() == nil {
			return failf("%v", err)
		}
		return nil
	}
	return svc.Run(ctx)
}

// serveMetrics serves reg at /metrics on addr until stop is called.
func serveMetrics(addr string, reg *prometheus.Registry) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, usagef("metrics listen: %v", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := newHTTPServer(mux)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			slog.Error("metrics server", "err", err)
		}
	}()
	slog.Info("metrics", "listen", "http://"+ln.Addr().String()+"/metrics")
	if metricsStarted != nil {
		metricsStarted(ln.Addr().String())
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	}, nil
}

// workerRoundDone, when set (by tests), is called after each round.
var workerRoundDone func()

// metricsStarted, when set (by tests), is told the address the worker's
// metrics are served on.
var metricsStarted func(addr string)
