package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// PolicyURL returns the URL of domain's policy (RFC 8461 §3.3):
// https://mta-sts.<domain>/.well-known/mta-sts.txt.
func PolicyURL(domain string) string {
	return "https://mta-sts." + strings.ToLower(strings.TrimSuffix(domain, ".")) + "/.well-known/mta-sts.txt"
}

// Fetch fetches and parses domain's policy from PolicyURL(domain) with
// client (nil means a client with Go's default transport). It never follows
// redirects (RFC 8461 §3.3), accepts status 200 only, requires the media
// type text/plain (§3.3) and reads at most MaxPolicySize bytes. Deadlines
// come from ctx. The client's own CheckRedirect is not used; the client is
// not modified.
func Fetch(ctx context.Context, client *http.Client, domain string) (*Policy, error) {
	var c http.Client
	if client != nil {
		c = *client
	}
	// RFC 8461 §3.3: "HTTP 3xx redirects MUST NOT be followed".
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PolicyURL(domain), nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	// RFC 8461 §3.3: "HTTP caching MUST NOT be used".
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := c.Do(req)
	if err != nil {
		if isCertError(err) {
			return nil, fmt.Errorf("%w: %w", ErrCertificate, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("%w: status %d to %q", ErrRedirect, resp.StatusCode, resp.Header.Get("Location"))
	case resp.StatusCode != http.StatusOK:
		// RFC 8461 §3.3: "only a 200 OK response" is a policy.
		return nil, fmt.Errorf("%w: status %d", ErrHTTPStatus, resp.StatusCode)
	}
	// RFC 8461 §3.3: senders check that the media type is "text/plain"
	// (parameters such as charset are allowed).
	ct := resp.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("%w: got %q", ErrContentType, ct)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading body: %w", ErrFetch, err)
	}
	if len(body) > MaxPolicySize {
		return nil, ErrTooLarge
	}
	return ParsePolicy(body)
}

// isCertError reports whether err comes from verifying the server's
// certificate (untrusted, wrong name, expired).
func isCertError(err error) bool {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		herr x509.HostnameError
		cerr x509.CertificateInvalidError
	)
	return errors.As(err, &verr) || errors.As(err, &uerr) || errors.As(err, &herr) || errors.As(err, &cerr)
}
