package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
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
when not.

PUB may hold several keys (at most 16, e.g. the current and the next signing
key): the signatures must then all be by one of them, and the output names
that key by its SSH fingerprint (as ssh-keygen -l prints it).`,
		Example: `  starttls-preload verify --pubkey keys/public-key.pem policy-list.json
  starttls-preload verify --pubkey keys/allowed_signers --sshsig policy-list.json.sshsig policy-list.json`,
		Args: cobra.ExactArgs(1),
		RunE: runVerify,
	}
	f := cmd.Flags()
	f.String("pubkey", "", "public key file: PEM or allowed_signers, one key or several")
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
	pubs, err := readPublicKeys("--pubkey", pubPath)
	if err != nil {
		return err
	}
	file := args[0]
	data, err := readListFile(file)
	if err != nil {
		return err
	}
	sigPath, _ := f.GetString("sig")
	sshPath, _ := f.GetString("sshsig")
	// Each signature file: the flag's, or FILE.EXT when it exists.
	read := func(path, ext string) (string, []byte, error) {
		explicit := path != ""
		if !explicit {
			path = file + "." + ext
		}
		b, err := publish.ReadFileLimit(path, maxSigFileSize)
		if errors.Is(err, fs.ErrNotExist) && !explicit {
			return path, nil, nil
		}
		if err != nil {
			return path, nil, failf("%v", err)
		}
		return path, b, nil
	}
	sigPath, sig, err := read(sigPath, "sig")
	if err != nil {
		return err
	}
	sshPath, sshsig, err := read(sshPath, "sshsig")
	if err != nil {
		return err
	}
	if sig == nil && sshsig == nil {
		return failf("no signature found: neither %s.sig nor %s.sshsig exists", file, file)
	}
	key, err := listgen.Verify(pubs, data, sig, sshsig)
	if err != nil {
		var se *listgen.SignatureError
		if errors.As(err, &se) {
			path := sigPath
			if se.Sig == "sshsig" {
				path = sshPath
			}
			return failf("%s: %v", path, se.Err)
		}
		return failf("%v", err)
	}
	verified := 0
	for _, s := range [][]byte{sig, sshsig} {
		if s != nil {
			verified++
		}
	}
	msg := fmt.Sprintf("%s: %d signature(s) good, key %s", file, verified, listgen.Fingerprint(key))
	if l, err := listgen.Parse(data); err == nil {
		msg += fmt.Sprintf(", serial %d, expires %s", l.Serial, l.Expires.UTC().Format(time.RFC3339))
		if !time.Now().Before(l.Expires) {
			slog.Warn("the list has expired: clients will not use it", "file", file, "expires", l.Expires)
		}
	}
	fmt.Fprintln(cmd.OutOrStdout(), msg)
	return nil
}
