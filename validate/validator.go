package validate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Dialer opens connections to MX hosts. A scheduler may pass one that limits
// connections per target address; nil means a net.Dialer.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Config configures a Validator. The zero value checks public domains with
// the system resolver and the system roots.
type Config struct {
	// Resolver is the DNS server to ask (host:port, port 53 if missing).
	// Empty means the first servers of /etc/resolv.conf.
	Resolver string
	// CAFile is a PEM file of roots trusted in addition to the system pool.
	CAFile string
	// Roots, when set, replaces the system pool (CAFile is still added).
	Roots *x509.CertPool
	// AllowPrivate permits loopback, private and other non-public target
	// addresses (labs and tests only).
	AllowPrivate bool
	// Timeout bounds each network step (a DNS query, connect, each SMTP
	// command, the TLS handshake). Default 30s.
	Timeout time.Duration
	// GreetingTimeout bounds the wait for the 220 greeting; postscreen-style
	// greeting delays of several seconds are normal. Default 60s.
	GreetingTimeout time.Duration
	// SMTPPort is the port to connect to. Default 25; other values are for
	// labs only.
	SMTPPort int
	// Concurrency bounds the SMTP connections one Validator has open at a
	// time. Default 64.
	Concurrency int
	// HELOName is the name sent in EHLO. Default: the host name.
	HELOName string
	// Now is the clock for certificate validity. Default time.Now.
	Now func() time.Time
	// Dialer opens TCP connections to MX hosts. Default a net.Dialer.
	Dialer Dialer
	// HTTPClient fetches MTA-STS policies. It must not follow redirects
	// (RFC 8461 §3.3); nil means a client with the validator's roots and
	// timeout that refuses redirects.
	HTTPClient *http.Client
}

// ErrConfig is wrapped by configuration errors from New.
var ErrConfig = errors.New("validate: bad configuration")

// Validator checks domains. It is safe for concurrent use.
type Validator struct {
	cfg   Config
	roots *x509.CertPool
	dns   *resolver
	dial  Dialer
	http  *http.Client
	sem   chan struct{}
	// chains remembers the chains that verified (see chainCache).
	chains *chainCache
}

// New returns a Validator. It loads the trusted roots once.
func New(cfg Config) (*Validator, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.GreetingTimeout <= 0 {
		cfg.GreetingTimeout = 60 * time.Second
	}
	if cfg.SMTPPort == 0 {
		cfg.SMTPPort = 25
	}
	if cfg.SMTPPort < 0 || cfg.SMTPPort > 65535 {
		return nil, fmt.Errorf("%w: SMTP port %d", ErrConfig, cfg.SMTPPort)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HELOName == "" {
		if h, err := os.Hostname(); err == nil && validHELO(h) {
			cfg.HELOName = h
		} else {
			cfg.HELOName = "localhost"
		}
	}
	if !validHELO(cfg.HELOName) {
		return nil, fmt.Errorf("%w: HELO name %q is neither a host name nor an address literal like [192.0.2.1]", ErrConfig, cfg.HELOName)
	}
	roots := cfg.Roots
	if roots == nil {
		sys, err := x509.SystemCertPool()
		if err != nil || sys == nil {
			sys = x509.NewCertPool()
		}
		roots = sys
	} else {
		roots = roots.Clone()
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: CA file: %v", ErrConfig, err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: CA file %s holds no PEM certificate", ErrConfig, cfg.CAFile)
		}
	}
	res, err := newResolver(cfg.Resolver, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	v := &Validator{cfg: cfg, roots: roots, dns: res, dial: cfg.Dialer, http: cfg.HTTPClient, sem: make(chan struct{}, cfg.Concurrency), chains: newChainCache(chainCacheSize)}
	if v.dial == nil {
		v.dial = &net.Dialer{}
	}
	if v.http == nil {
		v.http = v.newHTTPClient()
	}
	return v, nil
}

// validHELO reports whether name can follow EHLO (RFC 5321 §4.1.1.1): a
// host name of letters, digits and hyphens, or an address literal
// ("[192.0.2.1]", "[IPv6:2001:db8::1]").
func validHELO(name string) bool {
	if lit, ok := strings.CutPrefix(name, "["); ok {
		lit, ok = strings.CutSuffix(lit, "]")
		if !ok {
			return false
		}
		if v6, ok := strings.CutPrefix(lit, "IPv6:"); ok {
			a, err := netip.ParseAddr(v6)
			return err == nil && a.Is6() && a.Zone() == ""
		}
		a, err := netip.ParseAddr(lit)
		return err == nil && a.Is4()
	}
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
