package main

import (
	"errors"
	"log/slog"
	"strings"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

func init() { register(newFetchCmd) }

func newFetchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fetch",
		Short: "Download, verify and install the policy list for Postfix and/or Exim (run from cron)",
		Long: `fetch is the client for MTA hosts. It downloads the policy list, verifies its
signature with the pinned public key (never fetched from the server), refuses
a list older than the installed one and an expired list, renders it for
Postfix and/or Exim, installs each file atomically (temporary file, fsync,
rename; postmap runs on the temporary copy first) and runs --reload only when
a file changed. Nothing is downloaded when the list did not change (ETag).

The --pubkey file may hold several keys (PEM blocks, allowed_signers or
authorized_keys lines; at most 16): a list signed by any one of them is
accepted, so a host that also pins the service's announced next key keeps
working when the service switches to it. The log names the key that signed.

On any failure the installed files stay exactly as they were, the exit status
is 1 and one line on stderr says why. When the installed list has expired,
enforcement is withdrawn (an empty policy is installed) and every run exits 1
until a newer list is installed: the operator must act.

The mirror need not be trusted: the download is capped (fetch.max_size in
the config file, 256 MiB by default), the list is parsed only after its
signature verifies, and server text in errors is cleaned and cut short.
postmap and --reload are killed after --command-timeout.

Run it from cron or a systemd timer (see contrib/) with --jitter.`,
		Example: `  # Postfix, hash: table compiled with postmap, reload when changed
  starttls-preload fetch --url https://lists.example.org/policy-list.json \
    --pubkey /etc/starttls-preload/allowed_signers \
    --postfix-map /etc/postfix/starttls-policy --postmap hash \
    --reload 'postfix reload' --jitter 30m

  # Exim (the lsearch file is read at each delivery: no reload needed)
  starttls-preload fetch --url https://lists.example.org/policy-list.json \
    --pubkey /etc/starttls-preload/pubkey.pem \
    --exim-file /etc/exim4/starttls-policy`,
		Args: cobra.NoArgs,
		RunE: runFetch,
	}
	f := cmd.Flags()
	f.String("url", "", "location of policy-list.json (its signature is URL.sig)")
	f.String("pubkey", "", "pinned public key file: PEM or allowed_signers, one key or several (current and next)")
	f.String("state-dir", "/var/lib/starttls-preload", "where the state (state.json, expiry.json), the installed list's copy, the lock and the download in progress are kept")
	f.String("postfix-map", "", "Postfix smtp_tls_policy_maps table to write")
	f.String("postmap", "", "compile the Postfix map with postmap: hash, btree, lmdb or cdb (default: none, use texthash:)")
	f.String("exim-file", "", "Exim lsearch policy file to write")
	f.String("reload", "", "shell command run after a file changed, e.g. 'postfix reload'")
	f.Bool("early-adopter", false, "enforce testing entries too")
	f.Duration("jitter", 0, "wait a random time up to this long before fetching, e.g. 30m")
	f.Duration("command-timeout", publish.DefaultCommandTimeout, "kill postmap or the --reload command (and what it started) after this long")
	return cmd
}

func runFetch(cmd *cobra.Command, _ []string) error {
	c, err := loadConfig(cmd, map[string]string{
		"fetch.url":             "url",
		"fetch.pubkey":          "pubkey",
		"fetch.state_dir":       "state-dir",
		"fetch.postfix_map":     "postfix-map",
		"fetch.postmap":         "postmap",
		"fetch.exim_file":       "exim-file",
		"fetch.reload":          "reload",
		"fetch.early_adopter":   "early-adopter",
		"fetch.jitter":          "jitter",
		"fetch.command_timeout": "command-timeout",
	})
	if err != nil {
		return err
	}
	fc := c.Fetch
	switch {
	case fc.URL == "":
		return usagef("--url is required (see %s --help)", cmd.CommandPath())
	case fc.PubKey == "":
		return usagef("--pubkey is required: pin the list's public key (see %s --help)", cmd.CommandPath())
	case fc.PostfixMap == "" && fc.EximFile == "":
		return usagef("nothing to install: give --postfix-map and/or --exim-file")
	case !strings.HasPrefix(fc.URL, "https://") && !strings.HasPrefix(fc.URL, "http://"):
		return usagef("--url must be an http(s) URL, not %q", fc.URL)
	}
	pubs, err := readPublicKeys("--pubkey", fc.PubKey)
	if err != nil {
		return err
	}
	res, err := publish.Fetch(cmd.Context(), publish.FetchOptions{
		URL:            fc.URL,
		PublicKeys:     pubs,
		StateDir:       fc.StateDir,
		PostfixMap:     fc.PostfixMap,
		Postmap:        fc.Postmap,
		EximFile:       fc.EximFile,
		Reload:         fc.Reload,
		EarlyAdopter:   fc.EarlyAdopter,
		CAFile:         fc.CAFile,
		Jitter:         fc.Jitter,
		Timeout:        fc.Timeout,
		CommandTimeout: fc.CommandTimeout,
		MaxSize:        fc.MaxSize,
	})
	if errors.Is(err, publish.ErrExpired) && res != nil && res.Withdrawn {
		return failf("%s; check that %s is still published and current, then run fetch again", oneLine(err), fc.URL)
	}
	if err != nil {
		return failf("fetch: %s", oneLine(err))
	}
	var signedBy []any
	if res.SignedBy != nil {
		signedBy = []any{"key", listgen.Fingerprint(res.SignedBy)}
	}
	switch {
	case res.Changed:
		slog.Info("installed policy list", append([]any{"serial", res.Serial, "expires", res.Expires, "files", res.Files, "reloaded", res.Reloaded}, signedBy...)...)
	default:
		slog.Debug("policy list unchanged", "serial", res.Serial, "not_modified", res.NotModified, "reloaded", res.Reloaded)
	}
	return nil
}

// oneLine joins a multi-line error (errors.Join) into one line, without
// control characters (publish already cleans the text servers send).
func oneLine(err error) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, err.Error())
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
