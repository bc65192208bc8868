package submit

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/store"
)

// Config is what the door needs. Store, Checker and BaseURL are required.
type Config struct {
	Store   store.Store
	Checker Checker
	// Lifecycle changes domains' lives (submission, proofs, removal);
	// nil: the pages offer no submission.
	Lifecycle Lifecycle
	// Mailer sends the ownership-proof mails; nil: no mail proof is
	// offered (the DNS proof still works).
	Mailer Mailer
	// Lists is the archive of signed lists (the list and stats pages, the
	// serial listing a domain); nil: those pages show the store only.
	Lists ListArchive

	Rules         admission.Rules
	CheckInterval time.Duration // between checks of a validating domain (progress estimate)
	ListValidity  time.Duration // how long a list is valid (when MTAs drop a removed domain)
	Names         listgen.NameOptions

	// BaseURL is this instance's absolute URL, used in mails and in the
	// set-up instructions ("https://lists.example.org").
	BaseURL string
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// KeyFingerprints are the fingerprints of the published list keys
	// (listgen.Fingerprint), shown in the set-up instructions.
	KeyFingerprints []string

	Limits Limits
	// CheckTTL is how long a domain's check result is reused (default 5 minutes).
	CheckTTL time.Duration
	// CheckTimeout bounds one live check (default 2 minutes).
	CheckTimeout time.Duration
	// CSRFKey signs the forms' CSRF tokens; empty: a random key.
	CSRFKey []byte

	Now func() time.Time
	Log *slog.Logger
}

// Server is the web door: an http.Handler serving its pages and API.
type Server struct {
	c        Config
	base     *url.URL
	mux      *http.ServeMux
	routes   []Route
	checks   *checkCache
	lim      limiters
	csrfKey  []byte
	origin   *http.CrossOriginProtection
	lists    *listCache
	log      *slog.Logger
	secure   bool // BaseURL is https: cookies are Secure
	maxBody  int64
	batchMax int
	setup    setupInfo
}

type limiters struct {
	checkIP, checkDomain   *keyLimiter
	submitIP, submitDomain *keyLimiter
	verifyIP, verifyDomain *keyLimiter
	mailDomain             *keyLimiter
}

// Route is one pattern of the door for an http.ServeMux.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Errors of New.
var ErrConfig = errors.New("submit: bad configuration")

// maxBody bounds a request body (forms and JSON).
const maxBody = 16 << 10

// New returns the door.
func New(c Config) (*Server, error) {
	if c.Store == nil || c.Checker == nil {
		return nil, fmt.Errorf("%w: Store and Checker are required", ErrConfig)
	}
	base, err := url.Parse(strings.TrimSuffix(c.BaseURL, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%w: base URL %q is not an absolute http(s) URL", ErrConfig, c.BaseURL)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.CheckTTL <= 0 {
		c.CheckTTL = 5 * time.Minute
	}
	if c.CheckTimeout <= 0 {
		c.CheckTimeout = 2 * time.Minute
	}
	if c.CheckInterval <= 0 {
		c.CheckInterval = 6 * time.Hour
	}
	if c.ListValidity <= 0 {
		c.ListValidity = 7 * 24 * time.Hour
	}
	if c.Rules.MinChecks <= 0 {
		c.Rules = admission.DefaultRules()
	}
	c.Limits = c.Limits.withDefaults()
	key := c.CSRFKey
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key)
	}
	s := &Server{
		c: c, base: base, csrfKey: key, log: c.Log,
		checks:   newCheckCache(c.Checker, c.CheckTTL, c.CheckTimeout, c.Now),
		origin:   http.NewCrossOriginProtection(),
		lists:    newListCache(c.Lists),
		secure:   base.Scheme == "https",
		maxBody:  maxBody,
		batchMax: 100,
		setup:    newSetup(base.String(), c.KeyFingerprints),
	}
	if err := s.origin.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	s.origin.SetDenyHandler(http.HandlerFunc(s.denyCrossOrigin))
	l := c.Limits
	s.lim = limiters{
		checkIP: newKeyLimiter(l.CheckPerIP, c.Now), checkDomain: newKeyLimiter(l.CheckPerDomain, c.Now),
		submitIP: newKeyLimiter(l.SubmitPerIP, c.Now), submitDomain: newKeyLimiter(l.SubmitPerDomain, c.Now),
		verifyIP: newKeyLimiter(l.VerifyPerIP, c.Now), verifyDomain: newKeyLimiter(l.VerifyPerDomain, c.Now),
		mailDomain: newKeyLimiter(l.MailPerDomain, c.Now),
	}
	if err := parseTemplates(); err != nil {
		return nil, err
	}
	s.buildRoutes()
	return s, nil
}

// Routes returns the door's patterns, to be mounted on the service's mux
// beside the list files (which keep "/").
func (s *Server) Routes() []Route { return s.routes }

// ServeHTTP serves the door alone (tests, or a server of its own). The
// router's own answers (404, 405, redirects) carry the security headers too.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w.Header())
	s.mux.ServeHTTP(w, r)
}

// setSecurityHeaders sets the headers every answer carries: no inline
// script anywhere, no framing (clickjacking of the confirm and removal
// buttons), no sniffing, no Referer (a mailed link's token is in its URL).
// securityHeaders are set on every answer. Their values are shared,
// read-only slices of length and capacity 1 (an Add to one copies it), so
// that setting them allocates nothing per request.
var securityHeaders = [...]struct {
	key   string // canonical form
	value []string
}{
	{"Content-Security-Policy", []string{"default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"}},
	{"X-Content-Type-Options", []string{"nosniff"}},
	{"X-Frame-Options", []string{"DENY"}},
	{"Referrer-Policy", []string{"no-referrer"}},
}

func setSecurityHeaders(hd http.Header) {
	for _, h := range securityHeaders {
		hd[h.key] = h.value
	}
}

// SecurityHeaders wraps a whole server's handler (the service's mux the
// door is mounted on) so that every answer, the list files, the
// router's 404 and 405 answers and redirects included, carries the
// door's security headers.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		setSecurityHeaders(w.Header())
		next.ServeHTTP(w, r)
	})
}

func (s *Server) buildRoutes() {
	status := admission.NewStatusHandler(s.c.Store, s.c.Rules)
	add := func(pattern string, h http.HandlerFunc) {
		s.routes = append(s.routes, Route{pattern, s.wrap(h)})
	}
	// Pages.
	add("GET /{$}", s.home)
	add("GET /check", s.checkPage)
	add("POST /submit", s.submitPage)
	add("GET /domains/{domain}", s.statusPage)
	add("POST /domains/{domain}/verify", s.verifyPage)
	add("POST /domains/{domain}/removal", s.removalPage)
	add("GET /domains/{domain}/confirm", s.confirmGetPage)
	add("POST /domains/{domain}/confirm", s.confirmPostPage)
	add("POST /domains/{domain}/withdraw", s.withdrawPage)
	add("GET /list", s.listPage)
	add("GET /stats", s.statsPage)
	add("GET /static/", s.static)
	// API.
	add("GET /api/v1/check", s.apiCheck)
	add("POST /api/v1/submissions", s.apiSubmit)
	add("POST /api/v1/domains/{domain}/verify", s.apiVerify)
	add("POST /api/v1/domains/{domain}/removal", s.apiRemoval)
	add("GET /api/v1/domains/{domain}/confirm", s.apiPeek)
	add("POST /api/v1/domains/{domain}/confirm", s.apiConfirm)
	add("POST /api/v1/domains/{domain}/withdraw", s.apiWithdraw)
	add("GET /api/v1/domains/{domain}", s.apiStatus)
	add("GET /api/v1/domains", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("name") {
			s.apiBatch(w, r)
			return
		}
		status.ServeHTTP(w, r) // admission's paged list, unchanged
	})
	add("GET /api/v1/setup", s.apiSetup)
	add("GET /api/v1/list", s.apiList)
	add("GET /api/v1/stats", s.apiStats)
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	// Alone, the door answers the rest of the API in JSON as the status
	// handler does; mounted, the service's own "/api/v1/" takes this.
	mux.Handle("/api/v1/", s.wrap(status.ServeHTTP))
	s.mux = mux
}

// wrap adds the security headers, the body bound and the cross-origin
// check to a handler.
func (s *Server) wrap(h http.HandlerFunc) http.Handler {
	inner := s.origin.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		setSecurityHeaders(hd)
		if s.secure {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
		}
		inner.ServeHTTP(w, r)
	})
}

func (s *Server) denyCrossOrigin(w http.ResponseWriter, r *http.Request) {
	if isAPI(r) {
		writeError(w, http.StatusForbidden, "csrf", "cross-origin request refused")
		return
	}
	s.errorPage(w, r, http.StatusForbidden, "This form was sent from another site and is refused. Open the page on this site and send it again.")
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// clientIP is the visitor's address: the peer's, or, when the peer is a
// trusted proxy, the rightmost X-Forwarded-For entry that is not a
// trusted proxy (entries further left are the client's to invent).
func (s *Server) clientIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !s.trustedProxy(addr) {
		return addr
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return addr // garbage: believe no further
		}
		a = a.Unmap()
		if !s.trustedProxy(a) {
			return a
		}
		addr = a
	}
	return addr
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	for _, p := range s.c.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ipKey is the rate-limit key of a client: its address, or its /64 for
// IPv6 (one customer's network).
func ipKey(a netip.Addr) string {
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// limitCheck is one limiter and the key a request takes a token for;
// what says whose limit it is in the refusal.
type limitCheck struct {
	l    *keyLimiter
	key  string
	what string
}

// CSRF: a double-submit cookie. The cookie holds a random value; a form
// carries HMAC(key, value), which a site that can set our cookie (a
// sibling subdomain) still cannot compute. CrossOriginProtection is the
// first line; the token covers browsers that send neither Sec-Fetch-Site
// nor Origin.
const csrfCookie = "csrf"

// csrfToken returns the token for the forms of this page, setting the
// cookie when the visitor has none.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(csrfCookie); err == nil && validCookieValue(c.Value) {
		v = c.Value
	} else {
		b := make([]byte, 18)
		rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: v, Path: "/", HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteStrictMode, MaxAge: 86400})
	}
	return s.csrfMAC(v)
}

func validCookieValue(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 18
}

func (s *Server) csrfMAC(v string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte("csrf\x00" + v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// csrfOK reports whether a posted form carries the token of its cookie.
func (s *Server) csrfOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil || !validCookieValue(c.Value) {
		return false
	}
	got := r.PostFormValue("csrf")
	return hmac.Equal([]byte(got), []byte(s.csrfMAC(c.Value)))
}

// apiError is the body of every API error.
type apiError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encoding failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, apiError{Error: msg, Code: code})
}

// absURL is the instance's absolute URL of path (which starts with "/").
func (s *Server) absURL(path string) string {
	return s.base.String() + path
}

// ParseTrustedProxies reads web.trusted_proxies: CIDR prefixes, or single
// addresses.
func ParseTrustedProxies(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: trusted proxy %q is neither a CIDR prefix nor an address", ErrConfig, s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
