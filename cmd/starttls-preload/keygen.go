package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
)

func init() { register(newKeygenCmd) }

// Files keygen writes into --out.
const (
	keygenPrivate = "signing-key.pem"
	keygenPublic  = "public-key.pem"
	keygenAllowed = "allowed_signers"
)

func newKeygenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keygen --out DIR",
		Short: "Create a key pair for signing policy lists",
		Long: `keygen creates a signing key (ECDSA P-256 by default, or Ed25519) in DIR:

  ` + keygenPrivate + `   the private key, PEM (PKCS #8), mode 0600: keep it secret
  ` + keygenPublic + `    the public key, PEM: for fetch --pubkey, openssl and cosign
  ` + keygenAllowed + `   the public key as an OpenSSH allowed_signers line, for
                    ssh-keygen -Y verify and fetch --pubkey

It never overwrites an existing private key and never prints it.

To rotate the list signing key, make the next key in a directory of its own
and announce its public key with list.next_pubkey before switching list.key
to it (README.md, "Rotating the signing key").`,
		Example: `  starttls-preload keygen --out /etc/starttls-preload/keys
  starttls-preload keygen --out keys --alg ed25519
  starttls-preload keygen --out /var/lib/starttls-preload/next-key   # the next key, for a rotation`,
		Args: cobra.NoArgs,
		RunE: runKeygen,
	}
	cmd.Flags().String("out", "", "directory to write the keys into (created if missing)")
	cmd.Flags().String("alg", listgen.AlgECDSAP256, "key algorithm: ecdsa-p256 or ed25519")
	return cmd
}

func runKeygen(cmd *cobra.Command, _ []string) error {
	dir, _ := cmd.Flags().GetString("out")
	alg, _ := cmd.Flags().GetString("alg")
	if dir == "" {
		return usagef("--out is required (see %s --help)", cmd.CommandPath())
	}
	if alg != listgen.AlgECDSAP256 && alg != listgen.AlgEd25519 {
		return usagef("--alg must be %s or %s, not %q", listgen.AlgECDSAP256, listgen.AlgEd25519, alg)
	}
	key, err := listgen.GenerateKey(alg)
	if err != nil {
		return failf("%v", err)
	}
	priv, err := listgen.MarshalPrivateKey(key)
	if err != nil {
		return failf("%v", err)
	}
	pub, err := listgen.MarshalPublicKey(key.Public())
	if err != nil {
		return failf("%v", err)
	}
	line, err := listgen.AllowedSignersLine(key.Public())
	if err != nil {
		return failf("%v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return failf("%v", err)
	}
	privPath := filepath.Join(dir, keygenPrivate)
	// O_EXCL: never replace a key that may already sign published lists.
	f, err := os.OpenFile(privPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return failf("%s exists: refusing to overwrite a signing key (move it away first)", privPath)
	}
	if err != nil {
		return failf("%v", err)
	}
	if _, err := f.Write(priv); err != nil {
		f.Close()
		os.Remove(privPath)
		return failf("%v", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(privPath)
		return failf("%v", err)
	}
	for _, w := range []struct {
		name string
		data []byte
	}{{keygenPublic, pub}, {keygenAllowed, []byte(line)}} {
		if err := writeFileAtomic(filepath.Join(dir, w.name), w.data, 0o644); err != nil {
			return failf("%v", err)
		}
	}
	fmt.Fprintf(cmd.OutOrStdout(), "private key: %s (keep it secret)\npublic key:  %s\nallowed_signers: %s\n",
		privPath, filepath.Join(dir, keygenPublic), filepath.Join(dir, keygenAllowed))
	return nil
}
