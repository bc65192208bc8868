// Package prdoor is the GitHub pull-request door: it reads a pull request's
// policy-list.json through GitHub's REST API as data (never checking out or
// running anything from it), answers with one comment and a commit status
// (pr-check), watches open pull requests and hands proven additions to the
// lifecycle (Watcher), and proposes each published list as a pull request
// (ListPublisher). The rules are package prcheck's; this package only
// translates between them and GitHub.
package prdoor

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
)

// Errors.
var (
	ErrConfig        = errors.New("prdoor: bad configuration")
	ErrEvent         = errors.New("prdoor: unusable event")
	ErrResponseLarge = errors.New("prdoor: response from the API too large")
)

// MaxResponse bounds every API response body the client reads; the list
// file itself is bounded by prcheck.Options.MaxListSize below this.
const MaxResponse = 64 << 20

// DefaultAPIURL is GitHub's REST API.
const DefaultAPIURL = "https://api.github.com"

// NewClient returns a go-github client for the REST API at apiURL (GitHub's
// or a GitHub Enterprise Server's .../api/v3, as GITHUB_API_URL gives it),
// authenticated with token, with a deadline on each request and every
// response body bounded.
func NewClient(apiURL, token string, timeout time.Duration) (*github.Client, error) {
	if apiURL == "" {
		apiURL = DefaultAPIURL
	}
	u, err := url.Parse(apiURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("%w: API URL %q is not an http(s) URL", ErrConfig, apiURL)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	if timeout <= 0 {
		timeout = time.Minute
	}
	hc := &http.Client{Timeout: timeout, Transport: boundedTransport{http.DefaultTransport}}
	c := github.NewClient(hc)
	if token != "" {
		c = c.WithAuthToken(token)
	}
	c.BaseURL = u
	c.UserAgent = "starttls-preload"
	return c, nil
}

// boundedTransport cuts every response body at MaxResponse bytes: reading
// further fails with ErrResponseLarge.
type boundedTransport struct{ rt http.RoundTripper }

func (b boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > MaxResponse {
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %d bytes", ErrResponseLarge, resp.ContentLength)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxResponse}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One more byte would be over the bound.
		var one [1]byte
		if n, _ := l.rc.Read(one[:]); n > 0 {
			return 0, ErrResponseLarge
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// SplitRepo splits "OWNER/NAME".
func SplitRepo(s string) (owner, name string, err error) {
	owner, name, ok := strings.Cut(s, "/")
	if !ok || owner == "" || name == "" || strings.ContainsAny(name, "/ ") || strings.ContainsAny(owner, " ") {
		return "", "", fmt.Errorf("%w: repository %q is not OWNER/NAME", ErrConfig, s)
	}
	return owner, name, nil
}
