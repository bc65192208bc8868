package main

import (
	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "starttls-preload",
		Short: "Check mail servers, keep and sign the STARTTLS preload list, install it on MTA hosts",
		Long: `starttls-preload keeps a preload list of mail domains that require STARTTLS
with a valid certificate on known MX hosts, and the tools around it.

Configuration comes from flags, a config file (starttls-preload.yaml in the
current directory or --config) and STARTTLS_PRELOAD_* environment variables
(for example STARTTLS_PRELOAD_VALIDATE_TIMEOUT=30s for validate.timeout).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			return initLogging(cmd)
		},
	}
	root.PersistentFlags().String("config", "", "config file (default ./starttls-preload.yaml if present)")
	root.PersistentFlags().String("log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().String("log-format", "text", "log format: text or json")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usagef("%v (see %s --help)", err, cmd.CommandPath())
	})
	for _, add := range subcommands {
		root.AddCommand(add())
	}
	return root
}

// subcommands is filled by each command's file in its init function, so
// that commands can be added without touching this file.
var subcommands []func() *cobra.Command

func register(f func() *cobra.Command) { subcommands = append(subcommands, f) }
