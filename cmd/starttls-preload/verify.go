package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
)

func init() { register(newVerifyCmd) }

func newVerifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verify --pubkey PUB FILE",
		Short: "Check the signatures of a policy list; exit 0 if good, 1 if not",
		Long: `verify checks the detached signatures beside FILE (FILE.sig and FILE.sshsig,
or those named by --sig and --sshsig) against the public key PUB (PEM, or an
allowed_signers file). Every signature file present must verify, and at least
one must be present. The exit status is 0 when they do, 1 with the reason
when not.`,
		Example: `  starttls-preload verify --pubkey keys/public-key.pem policy-list.json
  starttls-preload verify --pubkey keys/allowed_signers --sshsig policy-list.json.sshsig policy-list.json`,
		Args: cobra.ExactArgs(1),
		RunE: runVerify,
	}
	f := cmd.Flags()
	f.String("pubkey", "", "public key file: PEM or allowed_signers")
	f.String("sig", "", "the base64 signature (default FILE.sig, if present)")
	f.String("sshsig", "", "the SSH signature (default FILE.sshsig, if present)")
	return cmd
}

func runVerify(cmd *cobra.Command, args []string) error {
	f := cmd.Flags()
	pubPath, _ := f.GetString("pubkey")
	if pubPath == "" {
		return usagef("--pubkey is required (see %s --help)", cmd.CommandPath())
	}
	pubBytes, err := os.ReadFile(pubPath)
	if err != nil {
		return usagef("--pubkey: %v", err)
	}
	pub, err := listgen.ParsePublicKey(pubBytes)
	if err != nil {
		return usagef("--pubkey %s: %v", pubPath, err)
	}
	file := args[0]
	data, err := readListFile(file)
	if err != nil {
		return err
	}
	sigPath, _ := f.GetString("sig")
	sshPath, _ := f.GetString("sshsig")
	checks := []struct {
		flag, path string
		verify     func(data, sig []byte) error
	}{
		{"sig", sigPath, func(d, s []byte) error { return listgen.VerifyBlob(pub, d, s) }},
		{"sshsig", sshPath, func(d, s []byte) error { return listgen.VerifySSH(pub, d, s) }},
	}
	verified := 0
	for _, c := range checks {
		explicit := c.path != ""
		if !explicit {
			c.path = file + "." + c.flag
		}
		sig, err := os.ReadFile(c.path)
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			continue
		}
		if err != nil {
			return failf("%v", err)
		}
		if err := c.verify(data, sig); err != nil {
			return failf("%s: %v", c.path, err)
		}
		verified++
	}
	if verified == 0 {
		return failf("no signature found: neither %s.sig nor %s.sshsig exists", file, file)
	}
	msg := fmt.Sprintf("%s: %d signature(s) good", file, verified)
	if l, err := listgen.Parse(data); err == nil {
		msg += fmt.Sprintf(", serial %d, expires %s", l.Serial, l.Expires.UTC().Format(time.RFC3339))
		if !time.Now().Before(l.Expires) {
			slog.Warn("the list has expired: clients will not use it", "file", file, "expires", l.Expires)
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), msg)
	return nil
}
