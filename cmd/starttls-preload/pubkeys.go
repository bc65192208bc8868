package main

import (
	"crypto"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

func init() { register(newPubkeysCmd) }

func newPubkeysCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pubkeys FILE",
		Short: "List the keys a public key file makes trusted, with their fingerprints",
		Long: `pubkeys reads a public key file as fetch --pubkey and verify --pubkey read it
(PEM blocks, allowed_signers lines, authorized_keys style lines) and prints
each key they will trust, in file order: its SHA-256 fingerprint, as
ssh-keygen -l prints it, and its type. allowed_signers lines for another
namespace or principal than starttls-preload are left out, as ssh-keygen
-Y verify -I starttls-preload -n starttls-preload leaves them out.

Compare the fingerprints out of band before pinning a key file, and after
the service announced its next key. The exit status is 1 when the file
holds no usable key or a line that cannot be read (the error names it).`,
		Example: `  starttls-preload pubkeys /etc/starttls-preload/allowed_signers
  curl -s https://lists.example.org/allowed_signers | starttls-preload pubkeys /dev/stdin`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readKeyFile(args[0])
			if err != nil {
				return err
			}
			keys, err := listgen.ParsePublicKeys(b)
			if err != nil {
				return failf("%s: %v", args[0], err)
			}
			for _, k := range keys {
				typ := "?"
				if sk, err := ssh.NewPublicKey(k); err == nil {
					typ = sk.Type()
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", listgen.Fingerprint(k), typ)
			}
			return nil
		},
	}
}

// Bounds of the small files the commands read: key files (as
// listgen.ParsePublicKeys takes them) and signature files.
const (
	maxKeyFileSize = listgen.MaxKeyFile
	maxSigFileSize = 64 << 10
)

// readPublicKeys reads the public keys of the file at path, given with
// flag: at most maxKeyFileSize bytes are read, and a file that is larger,
// cannot be read or holds no valid keys is a usage error naming flag.
func readPublicKeys(flag, path string) ([]crypto.PublicKey, error) {
	b, err := publish.ReadFileLimit(path, maxKeyFileSize)
	switch {
	case errors.Is(err, publish.ErrTooLarge):
		return nil, usagef("%s %v", flag, err)
	case err != nil:
		return nil, usagef("%s: %v", flag, err)
	}
	keys, err := listgen.ParsePublicKeys(b)
	if err != nil {
		return nil, usagef("%s %s: %v", flag, path, err)
	}
	return keys, nil
}

// readKeyFile reads a public key file of at most maxKeyFileSize bytes: a
// larger one is a failure (exit 1), as a bad key file is; one that cannot
// be read is a usage error.
func readKeyFile(path string) ([]byte, error) {
	b, err := publish.ReadFileLimit(path, maxKeyFileSize)
	switch {
	case errors.Is(err, publish.ErrTooLarge):
		return nil, failf("%v", err)
	case err != nil:
		return nil, usagef("%v", err)
	}
	return b, nil
}
