package main

import (
	"context"
	"log/slog"
	"net"
	"strings"

	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/service"
	"github.com/starttls-preload/starttls-preload/submit"
)

// webRoutes wires the web door (package submit) from the configuration:
// its checks go through the service's checker and polite dialer, refusing
// private addresses unless web.allow_private (and validate.allow_private)
// admit them; its proofs through the lifecycle, its
// mails through the one queue.
func webRoutes(ctx context.Context, p serveParts) ([]service.Route, error) {
	c := p.Config
	base := c.Web.BaseURL
	if base == "" {
		base = baseURLFromListen(c.Listen)
	}
	proxies, err := submit.ParseTrustedProxies(c.Web.TrustedProxies)
	if err != nil {
		return nil, usagef("web.trusted_proxies: %v", err)
	}
	secretPath := c.webSecretPath()
	secret, created, err := service.LoadOrCreateSecret(secretPath)
	if err != nil {
		return nil, err
	}
	if created {
		slog.Info("created the web door's secret (web.secret_file)", "file", secretPath)
	}
	var fps []string
	if keys, err := listgen.ParsePublicKeys(p.Keys.PubPEM); err == nil {
		for _, k := range keys {
			fps = append(fps, listgen.Fingerprint(k))
		}
	}
	cfg := submit.Config{
		Store:           p.Store,
		Checker:         p.WebValidator,
		Lifecycle:       &lifecycle.Lifecycle{Store: p.Store, TXT: p.Validator, Now: p.Now},
		Lists:           p.Archive,
		Rules:           p.Rules,
		CheckInterval:   c.Admission.CheckInterval,
		ListValidity:    c.List.Validity,
		Names:           listgen.NameOptions{AllowTestTLD: c.List.AllowTestTLD},
		BaseURL:         base,
		TrustedProxies:  proxies,
		CSRFKey:         secret,
		KeyFingerprints: fps,
		Now:             p.Now,
		Log:             slog.Default(),
	}
	if p.Mailer != nil { // no typed nil: without a relay, no mail proof
		cfg.Mailer = p.Mailer
	}
	door, err := submit.New(cfg)
	if err != nil {
		return nil, usagef("web: %v", err)
	}
	var routes []service.Route
	for _, r := range door.Routes() {
		routes = append(routes, service.Route{Pattern: r.Pattern, Handler: r.Handler})
	}
	return routes, nil
}

// baseURLFromListen is web.base_url's default: http:// and the listen
// address, with "localhost" for an address that listens everywhere.
func baseURLFromListen(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + strings.TrimSuffix(listen, "/")
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
