package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
)

func init() { register(newSignCmd) }

func newSignCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sign --key KEY FILE",
		Short: "Sign a policy list: write FILE.sig and FILE.sshsig beside it",
		Long: `sign checks that FILE is a valid list in canonical form, then writes two
detached signatures over its exact bytes:

  FILE.sig     base64 of a DER ECDSA-SHA256 (or Ed25519) signature, for
               openssl dgst -verify, cosign verify-blob and fetch
  FILE.sshsig  an OpenSSH signature in namespace "starttls-preload", for
               ssh-keygen -Y verify (every MTA host has OpenSSH)

Check them with starttls-preload verify, or without this program:

  openssl dgst -sha256 -verify public-key.pem -signature <(base64 -d FILE.sig) FILE
  ssh-keygen -Y verify -f allowed_signers -I starttls-preload -n starttls-preload -s FILE.sshsig < FILE`,
		Example: `  starttls-preload sign --key keys/signing-key.pem policy-list.json`,
		Args:    cobra.ExactArgs(1),
		RunE:    runSign,
	}
	cmd.Flags().String("key", "", "private key file (PEM), as keygen writes it")
	return cmd
}

func runSign(cmd *cobra.Command, args []string) error {
	keyPath, _ := cmd.Flags().GetString("key")
	if keyPath == "" {
		return usagef("--key is required (see %s --help)", cmd.CommandPath())
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return usagef("--key: %v", err)
	}
	key, err := listgen.ParsePrivateKey(keyPEM)
	if err != nil {
		return usagef("--key %s: %v", keyPath, err)
	}
	file := args[0]
	data, err := readListFile(file)
	if err != nil {
		return err
	}
	l, err := listgen.Parse(data)
	if err != nil {
		return failf("%s: %v; refusing to sign", file, err)
	}
	if canon, err := listgen.Marshal(l); err != nil || string(canon) != string(data) {
		return failf("%s is not in canonical form; run `starttls-preload list lint --fix %s` first", file, file)
	}
	sig, err := listgen.SignBlob(key, data)
	if err != nil {
		return failf("%v", err)
	}
	sshsig, err := listgen.SignSSH(key, data)
	if err != nil {
		return failf("%v", err)
	}
	if err := writeFileAtomic(file+".sig", sig, 0o644); err != nil {
		return failf("%v", err)
	}
	if err := writeFileAtomic(file+".sshsig", sshsig, 0o644); err != nil {
		return failf("%v", err)
	}
	slog.Info("signed", "file", file, "serial", l.Serial, "expires", l.Expires, "sig", file+".sig", "sshsig", file+".sshsig")
	return nil
}
