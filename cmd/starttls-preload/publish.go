package main

import (
	"crypto"
	"errors"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

func init() { register(newPublishCmd) }

func newPublishCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "publish",
		Short: "Publish the signed policy lists",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newPublishExportCmd())
	cmd.AddCommand(newPublishGitHubCmd())
	return cmd
}

func newPublishExportCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "export DIR",
		Short: "Write the published tree as static files under DIR, for any web server or mirror",
		Long: `export writes what serve publishes over HTTP as plain files under DIR:
policy-list.json with .sig and .sshsig, every earlier list under
v/SERIAL/, pubkey.pem, allowed_signers, postfix-tls-policy and exim-tls-policy.
Each file is replaced atomically; files under v/ never change.

pubkey.pem and allowed_signers hold the keys of --pubkey (one or several),
or else the list signing key followed by the next key(s) announced with
list.next_pubkey, as serve publishes them.

Mirrors and CDNs need not be trusted: fetch verifies the signature with a
key pinned on the MTA host.`,
		Example: `  starttls-preload publish export /var/www/starttls-preload
  starttls-preload publish export --archive ./data/archive --pubkey ./data/keys/public-key.pem ./site
  rsync -a ./site/ mirror.example.net:/srv/www/`,
		Args: cobra.ExactArgs(1),
		RunE: runPublishExport,
	}
	cmd.Flags().String("archive", "", "archive of signed lists (default DATA_DIR/archive)")
	cmd.Flags().String("pubkey", "", "public key file, PEM or allowed_signers, one key or several (default: the list signing key, then list.next_pubkey)")
	cmd.Flags().String("data-dir", "", "data directory (default ./data)")
	return cmd
}

func runPublishExport(cmd *cobra.Command, args []string) error {
	c, err := loadConfig(cmd, map[string]string{
		"publish.archive": "archive",
		"publish.pubkey":  "pubkey",
		"data_dir":        "data-dir",
	})
	if err != nil {
		return err
	}
	archiveDir := c.archiveDir()
	if _, err := os.Stat(filepath.Join(archiveDir, "current")); err != nil {
		return failf("no published list in %s (see --archive)", archiveDir)
	}
	keys, keyPath, err := exportPublicKeys(c)
	if err != nil {
		return err
	}
	pubPEM, err := listgen.MarshalPublicKeys(keys)
	if err != nil {
		return usagef("public key %s: %v", keyPath, err)
	}
	signers, err := listgen.AllowedSigners(keys)
	if err != nil {
		return usagef("public key %s: %v", keyPath, err)
	}
	a, err := publish.OpenArchive(archiveDir)
	if err != nil {
		return failf("%v", err)
	}
	cur, err := a.Current(cmd.Context())
	if err != nil {
		return failf("%v", err)
	}
	if _, err := listgen.Verify(keys, cur.List, cur.Sig, nil); err != nil {
		return failf("the current list (serial %d) does not verify with %s: %v", cur.Serial, keyPath, err)
	}
	if err := publish.Export(cmd.Context(), a, args[0], pubPEM, signers); err != nil {
		if errors.Is(err, publish.ErrExportConflict) {
			return failf("%v (remove it or export to a fresh directory)", err)
		}
		return failf("%v", err)
	}
	cmd.Printf("exported serial %d to %s\n", cur.Serial, args[0])
	return nil
}

// exportPublicKeys reads the public keys from --pubkey, or takes them from
// the list signing key that serve uses (list.key, default
// DATA_DIR/list-signing.key), which it never creates, followed by the next
// key(s) of list.next_pubkey, as serve publishes them.
func exportPublicKeys(c *Config) ([]crypto.PublicKey, string, error) {
	if p := c.Publish.PubKey; p != "" {
		keys, err := readPublicKeys("--pubkey", p)
		return keys, p, err
	}
	p := c.listKeyPath()
	b, err := publish.ReadFileLimit(p, maxKeyFileSize)
	if err != nil {
		return nil, p, usagef("no --pubkey and no signing key: %v", err)
	}
	k, err := listgen.ParsePrivateKey(b)
	if err != nil {
		return nil, p, usagef("signing key %s: %v", p, err)
	}
	keys, err := publishedKeys(k.Public(), c.List.NextPubKey)
	return keys, p, err
}
