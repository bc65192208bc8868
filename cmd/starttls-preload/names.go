package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/validate"
)

// nameOptions are the configuration's rules for domain names
// (list.allow_test_tld), for commands that take names before they load the
// rest of the configuration.
func nameOptions(cmd *cobra.Command) (listgen.NameOptions, error) {
	c, err := loadConfig(cmd, nil)
	if err != nil {
		return listgen.NameOptions{}, err
	}
	return listgen.NameOptions{AllowTestTLD: c.List.AllowTestTLD}, nil
}

// parseDomainArg normalises a domain name given on the command line with
// listgen.ParseDomain, the one normaliser; a refusal is a usage error that
// says why in one line.
func parseDomainArg(s string, o listgen.NameOptions) (string, error) {
	name, err := listgen.ParseDomain(s, o)
	if err != nil {
		return "", nameUsageError(err)
	}
	return name, nil
}

// nameUsageError is the usage error for a name ParseDomain refused: its
// reason, one line.
func nameUsageError(err error) error {
	var ne *listgen.NameError
	if errors.As(err, &ne) {
		return usagef("%s", ne.Reason)
	}
	return usagef("%v", err)
}

// namedRound checks domains through listgen.ParseDomain first, so that a
// name from a domains file is refused as one on the command line is; a
// refused name is a validate.ErrInvalidDomain, which check counts.
type namedRound struct {
	round *validate.Round
	names listgen.NameOptions
}

func (r namedRound) Check(ctx context.Context, domain string) (*validate.Result, error) {
	name, err := listgen.ParseDomain(domain, r.names)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", validate.ErrInvalidDomain, err)
	}
	return r.round.Check(ctx, name)
}
