package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
)

func init() { register(newWorkerCmd) }

func newWorkerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Check due domains from the shared store, without serving the list",
		Long: `worker runs rounds of checks only, for extra machines sharing the work of
a serve process through the same store (store.driver postgres): each
round claims due domains with a lease, checks them and records the
results and decisions. The serve process publishes the list.`,
		Example: `  STARTTLS_PRELOAD_STORE_DRIVER=postgres STARTTLS_PRELOAD_STORE_DSN=postgres://checker@db/preload starttls-preload worker
  starttls-preload worker --once   # one round, then exit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir"})
			if err != nil {
				return err
			}
			once, _ := cmd.Flags().GetBool("once")
			return runWorker(cmd.Context(), c, once)
		},
	}
	cmd.Flags().String("data-dir", "./data", "data directory (the SQLite store lives there unless store.driver is postgres)")
	cmd.Flags().Bool("once", false, "run one round and exit")
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
	_, metrics := newRegistry()
	notifier, closeNotify, err := newNotifier(c, metrics)
	if err != nil {
		return err
	}
	defer closeNotify()
	sched, err := newScheduler(c, st, metrics, workerName("worker"), schedulerDeps{notifier: notifier})
	if err != nil {
		return err
	}
	t := time.NewTicker(min(time.Minute, c.Admission.ListedInterval/4))
	defer t.Stop()
	for {
		stats, err := sched.RunRound(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			slog.Error("round failed", "err", err)
			if once {
				return failf("round failed: %v", err)
			}
		case stats.Claimed > 0:
			slog.Info("round", "claimed", stats.Claimed, "checked", stats.Checked, "passed", stats.Passed,
				"failed", stats.Failed, "errors", stats.Errors, "transitions", stats.Transitions)
		}
		if once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
