package validate

import (
	"context"

	"github.com/miekg/dns"
)

// LookupTXT returns the TXT records at name through the validator's
// resolver (the configured validate.resolver), each record's strings joined
// (RFC 1035 §3.3.14: a TXT record is one or more character-strings). A name
// that does not exist or has no TXT record gives nil, nil; a failed look-up
// (timeout, SERVFAIL) is an error. The ownership proofs of package
// lifecycle use it.
func (v *Validator) LookupTXT(ctx context.Context, name string) ([]string, error) {
	ans, err := v.dns.query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	return txtStrings(ans), nil
}
