package validate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/miekg/dns"

	"github.com/starttls-preload/starttls-preload/validate/mtasts"
	"github.com/starttls-preload/starttls-preload/validate/tlsrpt"
)

// txtStrings returns the TXT records of an answer, each record's strings
// joined. A missing name is no records.
func txtStrings(ans *answer) []string {
	var out []string
	for _, rr := range ans.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// policyOutcome is the MTA-STS state of a domain.
type policyOutcome struct {
	found  []Finding
	record *mtasts.Record
	policy *mtasts.Policy
}

// mtastsRecord reads the answer to the _mta-sts.<domain> TXT query
// (RFC 8461 §3.1). fetch reports whether a record is published, so that
// the policy is to be fetched (fetchMTASTS).
func (v *Validator) mtastsRecord(domain string, ans *answer, err error) (out policyOutcome, fetch bool) {
	if err != nil {
		out.found = append(out.found, finding(CodeMTASTSLookupFailed, "", "", "Looking up _mta-sts.%s failed: %v.", domain, errText(err)))
		return out, false
	}
	rec, err := mtasts.SelectRecord(txtStrings(ans))
	switch {
	case errors.Is(err, mtasts.ErrNoRecord):
		out.found = append(out.found, finding(CodeMTASTSNotPublished, "", "", "%s publishes no MTA-STS record.", domain))
		return out, false
	case err != nil:
		out.found = append(out.found, finding(CodeMTASTSRecordInvalid, "", "", "The _mta-sts.%s record is not usable: %v.", domain, errText(err)))
		return out, false
	}
	out.record = rec
	if len(rec.Duplicates) > 0 {
		// RFC 8461 §3.2: all entries but the first are ignored.
		out.found = append(out.found, finding(CodeMTASTSDuplicateField, "", "", "The _mta-sts.%s record gives %s more than once; senders use the first (id %s) and ignore the others.",
			domain, quoteList(rec.Duplicates), rec.ID))
	}
	return out, true
}

// quoteList writes field names as "a", "b" and "c".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " and " + q[len(q)-1]
}

// fetchMTASTS fetches the policy of a domain that publishes an MTA-STS
// record (RFC 8461 §3.3).
func (v *Validator) fetchMTASTS(ctx context.Context, domain string, out policyOutcome) policyOutcome {
	fctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	defer cancel()
	pol, err := mtasts.Fetch(fctx, v.http, domain)
	switch {
	case errors.Is(err, mtasts.ErrPolicySyntax):
		out.found = append(out.found, finding(CodeMTASTSPolicyInvalid, "", "", "The policy at %s is invalid: %v.", mtasts.PolicyURL(domain), errText(err)))
		return out
	case err != nil:
		out.found = append(out.found, finding(CodeMTASTSFetchFailed, "", "", "Fetching %s failed: %v.", mtasts.PolicyURL(domain), errText(err)))
		return out
	}
	out.policy = pol
	if len(pol.Duplicates) > 0 {
		// RFC 8461 §3.2: all entries but the first are ignored.
		out.found = append(out.found, finding(CodeMTASTSDuplicateField, "", "", "The policy at %s gives %s more than once; senders use the first (mode %s, max_age %d) and ignore the others.",
			mtasts.PolicyURL(domain), quoteList(pol.Duplicates), pol.Mode, pol.MaxAge))
	}
	return out
}

// findings adds, to the look-up findings, the policy's mode and whether its
// mx patterns cover every MX host (RFC 8461 §4.1).
func (p policyOutcome) findings(mxs []mxTarget) []Finding {
	fs := append([]Finding(nil), p.found...)
	if p.policy == nil {
		return fs
	}
	switch p.policy.Mode {
	case mtasts.ModeEnforce:
		fs = append(fs, finding(CodeMTASTSEnforce, "", "", "The MTA-STS policy (id %s) is in enforce mode.", p.record.ID))
	case mtasts.ModeTesting:
		fs = append(fs, finding(CodeMTASTSModeTesting, "", "", "The MTA-STS policy (id %s) is in testing mode.", p.record.ID))
	case mtasts.ModeNone:
		fs = append(fs, finding(CodeMTASTSModeNone, "", "", "The MTA-STS policy (id %s) has mode none.", p.record.ID))
	}
	if p.policy.Mode == mtasts.ModeNone {
		return fs
	}
	for _, mx := range mxs {
		if !p.policy.Match(mx.host) {
			fs = append(fs, finding(CodeMTASTSMXNotCovered, mx.host, "", "The MX host %s matches none of the policy's mx patterns (%s).", mx.host, strings.Join(p.policy.MX, ", ")))
		}
	}
	return fs
}

func (p policyOutcome) info() *MTASTSInfo {
	if p.policy == nil {
		return nil
	}
	return &MTASTSInfo{ID: p.record.ID, Mode: string(p.policy.Mode), MX: append([]string{}, p.policy.MX...), MaxAge: p.policy.MaxAge}
}

// checkTLSRPT reads the answer to the _smtp._tls.<domain> TXT query
// (RFC 8460 §3).
func (v *Validator) checkTLSRPT(domain string, ans *answer, err error) []Finding {
	if err != nil {
		return []Finding{finding(CodeTLSRPTLookupFailed, "", "", "Looking up _smtp._tls.%s failed: %v.", domain, errText(err))}
	}
	rec, err := tlsrpt.SelectRecord(txtStrings(ans))
	switch {
	case errors.Is(err, tlsrpt.ErrNoRecord):
		return []Finding{finding(CodeTLSRPTNotPublished, "", "", "%s publishes no TLS-RPT record.", domain)}
	case err != nil:
		return []Finding{finding(CodeTLSRPTRecordInvalid, "", "", "The _smtp._tls.%s record is not usable: %v.", domain, errText(err))}
	}
	var rua []string
	for _, u := range rec.RUA {
		rua = append(rua, u.String())
	}
	return []Finding{finding(CodeTLSRPTPublished, "", "", "TLS reports go to %s.", strings.Join(rua, ", "))}
}

// newHTTPClient is the default MTA-STS policy client: the validator's
// roots, no redirects, and a dialer that resolves through the validator's
// resolver and refuses non-public addresses unless allowed.
func (v *Validator) newHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: v.cfg.Timeout}
	tr := &http.Transport{
		// The policy is public: only the server's authentication matters,
		// so classical key exchange is enough and costs less per fetch than
		// the default post-quantum hybrid.
		TLSClientConfig: &tls.Config{RootCAs: v.roots, MinVersion: tls.VersionTLS12,
			CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}},
		TLSHandshakeTimeout:    v.cfg.Timeout,
		ResponseHeaderTimeout:  v.cfg.Timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			info, _, err := v.lookupAddrs(ctx, host)
			if err != nil {
				return nil, err
			}
			if len(info) == 0 {
				return nil, fmt.Errorf("no address for %s", host)
			}
			var lastErr error
			for _, ip := range info {
				if !v.cfg.AllowPrivate && !isPublic(ip) {
					lastErr = fmt.Errorf("%s resolves to non-public address %s", host, ip)
					continue
				}
				c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
				if err == nil {
					return c, nil
				}
				lastErr = err
			}
			return nil, lastErr
		},
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       v.cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
