// Package tlsrpt parses SMTP TLS Reporting (TLS-RPT) DNS records
// (RFC 8460 §3): the "_smtp._tls.<domain>" TXT record that tells senders
// where to send daily reports about TLS failures.
//
// The package is pure protocol code: callers look up the TXT record and pass
// its strings to SelectRecord. Every error wraps one of the sentinels below.
package tlsrpt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/starttls-preload/starttls-preload/validate/internal/txtrecord"
)

// Sentinel errors.
var (
	// ErrNoRecord: no TXT string starts with "v=TLSRPTv1".
	ErrNoRecord = errors.New("tlsrpt: no TLS-RPT record")
	// ErrMultipleRecords: more than one TLS-RPT record; RFC 8460 §3 says
	// senders then send no reports.
	ErrMultipleRecords = errors.New("tlsrpt: more than one TLS-RPT record")
	// ErrSyntax: the record does not follow RFC 8460 §3.
	ErrSyntax = errors.New("tlsrpt: invalid TLS-RPT record")
)

// recordGrammar: RFC 8460 §3, tlsrpt-version = %s"v=TLSRPTv1", first;
// white space around ";" only, as in MTA-STS, except around the commas
// between rua URIs, which ParseRecord checks.
var recordGrammar = txtrecord.Grammar{
	Version:  "v=TLSRPTv1",
	NoRecord: ErrNoRecord,
	Multiple: ErrMultipleRecords,
	Syntax:   ErrSyntax,
}

// Record is a parsed TLS-RPT record.
type Record struct {
	// RUA holds the report destinations in order, each a "mailto:" or
	// "https:" URI (RFC 8460 §3).
	RUA []*url.URL
	// Extensions holds unknown fields in order (they are ignored by senders).
	Extensions []Pair
}

// Pair is one extension field.
type Pair struct{ Key, Value string }

// SelectRecord picks the TLS-RPT record among the strings of a TXT RRset
// (each string one record, its character-strings already joined). RFC 8460
// §3: records not beginning with "v=TLSRPTv1;" are discarded before
// counting; more than one record left means no reporting
// (ErrMultipleRecords).
func SelectRecord(txts []string) (*Record, error) {
	return txtrecord.SelectParse(recordGrammar, txts, ParseRecord)
}

// ParseRecord parses one TLS-RPT record strictly per RFC 8460 §3:
//
//	tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim   = *WSP ";" *WSP
//	tlsrpt-rua    = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//
// White space is allowed around ";" and around the commas between URIs,
// nowhere else (not after "rua=", not at the end without ";"). rua may be
// given more than once; the URIs of every rua field count, in order.
func ParseRecord(txt string) (*Record, error) {
	r := &Record{}
	haveRUA := false
	err := recordGrammar.Parse(txt, func(k, v string) error {
		switch k {
		case "rua":
			// RFC 8460 §3 does not limit rua to one field.
			haveRUA = true
			uris := strings.Split(v, ",")
			for i, u := range uris {
				// RFC 8460 §3: *WSP "," *WSP between URIs, so white space
				// only after a comma or before one.
				if i > 0 {
					u = strings.TrimLeft(u, " \t")
				}
				if i < len(uris)-1 {
					u = strings.TrimRight(u, " \t")
				}
				parsed, err := parseURI(u)
				if err != nil {
					return fmt.Errorf("%w: rua %q: %s", ErrSyntax, u, err)
				}
				r.RUA = append(r.RUA, parsed)
			}
		case "v":
			return fmt.Errorf("%w: \"v\" given twice", ErrSyntax)
		default:
			// RFC 8460 §3: tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E).
			if !txtrecord.ValidExtValue(v) {
				return fmt.Errorf("%w: bad value for %q", ErrSyntax, k)
			}
			r.Extensions = append(r.Extensions, Pair{k, v})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// RFC 8460 §3: "the tlsrpt-rua field is required".
	if !haveRUA {
		return nil, fmt.Errorf("%w: no \"rua\" field", ErrSyntax)
	}
	return r, nil
}

// parseURI checks one report URI: RFC 8460 §3 defines "mailto" (with an
// address) and "https" (with a host); commas and "!" must be
// percent-encoded, so a raw "!" is refused.
func parseURI(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("empty URI")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f || c == '!' || c == ';' {
			return nil, fmt.Errorf("character %q not allowed (percent-encode it)", c)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a URI")
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		addr := u.Opaque
		if at := strings.LastIndexByte(addr, '@'); at <= 0 || at == len(addr)-1 {
			return nil, errors.New("mailto: URI without an address")
		}
	case "https":
		if u.Host == "" {
			return nil, errors.New("https: URI without a host")
		}
	default:
		return nil, fmt.Errorf("scheme %q is not mailto or https", u.Scheme)
	}
	return u, nil
}
