package validate

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// addrCheck is the outcome of the SMTP/STARTTLS/PKIX checks of one
// (MX host, address). It is shared by every domain that uses the host.
type addrCheck struct {
	res      AddressResult
	findings []Finding
	// DANE outcome for the host's TLSA set, when the host had one.
	dane daneOutcome
}

// session is one SMTP connection under test.
type session struct {
	v    *Validator
	conn net.Conn
	br   *bufio.Reader
	host string
	ip   string
	out  *addrCheck
}

// checkAddress runs the per-address dialogue: connect, 220, EHLO,
// STARTTLS, TLS >= 1.2, chain, name and expiry, EHLO again, QUIT.
func (v *Validator) checkAddress(ctx context.Context, host string, ip netip.Addr, tlsa *tlsaSet) *addrCheck {
	out := &addrCheck{res: AddressResult{IP: ip.String()}}
	ipStr := ip.String()
	if !v.cfg.AllowPrivate && !isPublic(ip) {
		out.findings = append(out.findings, finding(CodeMXPrivateAddress, host, ipStr,
			"%s resolves to %s, which is not a public address; it was not contacted.", host, ipStr))
		return out
	}
	select {
	case v.sem <- struct{}{}:
		defer func() { <-v.sem }()
	case <-ctx.Done():
		return out
	}
	addr := net.JoinHostPort(ipStr, strconv.Itoa(v.cfg.SMTPPort))
	dctx, cancel := context.WithTimeout(ctx, v.cfg.Timeout)
	conn, err := v.dial.DialContext(dctx, "tcp", addr)
	cancel()
	if err != nil {
		if ctx.Err() == nil && isTimeout(err) {
			out.findings = append(out.findings, finding(CodeMXTimeout, host, ipStr,
				"Connecting to %s (%s) port %d timed out after %v.", host, ipStr, v.cfg.SMTPPort, v.cfg.Timeout))
		} else {
			out.findings = append(out.findings, finding(CodeMXConnectFailed, host, ipStr,
				"Connecting to %s (%s) port %d failed: %v.", host, ipStr, v.cfg.SMTPPort, errText(err)))
		}
		return out
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	s := &session{v: v, conn: conn, br: newReplyReader(conn), host: host, ip: ipStr, out: out}
	s.run(tlsa)
	return out
}

func (s *session) add(code, format string, args ...any) {
	s.out.findings = append(s.out.findings, finding(code, s.host, s.ip, format, args...))
}

// fail records a failed step: a timeout, a reply that broke the limits, or
// a lost connection.
func (s *session) fail(step string, timeout time.Duration, err error) {
	switch {
	case isTimeout(err):
		s.add(CodeMXTimeout, "No complete answer to %s within %v.", step, timeout)
	case errors.Is(err, ErrReplyLineTooLong), errors.Is(err, ErrReplyTooManyLines),
		errors.Is(err, ErrReplyMalformed), errors.Is(err, ErrTooMuchData):
		s.add(CodeSMTPBadResponse, "Invalid reply to %s: %v.", step, errText(err))
	default:
		s.add(CodeMXConnectFailed, "Connection lost during %s: %v.", step, errText(err))
	}
}

// cmd sends a command (empty for the greeting) and reads its reply within
// timeout.
func (s *session) cmd(line string, timeout time.Duration) (reply, error) {
	if err := s.conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return reply{}, err
	}
	if line != "" {
		if _, err := io.WriteString(s.conn, line+"\r\n"); err != nil {
			return reply{}, err
		}
	}
	return readReply(s.br)
}

// quit ends the session politely. The verdict is already known: the reply
// is read, but not waited for long.
func (s *session) quit() {
	s.cmd("QUIT", min(s.v.cfg.Timeout, quitTimeout))
}

const quitTimeout = 5 * time.Second

func (s *session) run(tlsa *tlsaSet) {
	cfg := s.v.cfg
	greet, err := s.cmd("", cfg.GreetingTimeout)
	if err != nil {
		s.fail("the greeting", cfg.GreetingTimeout, err)
		return
	}
	if greet.code != 220 {
		s.add(CodeSMTPBadResponse, "The server greeted with %q instead of 220.", greet.String())
		s.quit()
		return
	}
	ehlo, err := s.cmd("EHLO "+cfg.HELOName, cfg.Timeout)
	if err != nil {
		s.fail("EHLO", cfg.Timeout, err)
		return
	}
	if ehlo.code != 250 {
		s.add(CodeSMTPBadResponse, "EHLO was answered with %q instead of 250.", ehlo.String())
		s.quit()
		return
	}
	if !hasExtension(ehlo, "STARTTLS") {
		s.add(CodeSTARTTLSNotOffered, "The EHLO reply does not list STARTTLS.")
		s.quit()
		return
	}
	st, err := s.cmd("STARTTLS", cfg.Timeout)
	if err != nil {
		s.fail("STARTTLS", cfg.Timeout, err)
		return
	}
	if st.code != 220 {
		s.add(CodeSTARTTLSCommandFailed, "STARTTLS was answered with %q instead of 220.", st.String())
		s.quit()
		return
	}
	if s.br.Buffered() > 0 {
		// Bytes after the 220 would be read as if they came over TLS
		// (the STARTTLS command injection flaw): refuse them.
		s.add(CodeSMTPBadResponse, "The server sent data after its 220 reply to STARTTLS, before the TLS handshake.")
		return
	}
	tc := tls.Client(s.conn, &tls.Config{
		ServerName: s.host,
		// Verification is done below, step by step, to report each failure
		// by its own code; TLS 1.0 and 1.1 are let through the handshake
		// only to be recognised and reported as too old.
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       probeSuites,
		CurvePreferences:   classicalCurves,
	})
	if err := tc.SetDeadline(time.Now().Add(cfg.Timeout)); err != nil {
		s.fail("the TLS handshake", cfg.Timeout, err)
		return
	}
	if err := tc.Handshake(); err != nil {
		if isTimeout(err) {
			s.add(CodeMXTimeout, "The TLS handshake did not complete within %v.", cfg.Timeout)
		} else {
			s.add(CodeTLSHandshakeFailed, "The TLS handshake failed: %v.", errText(err))
		}
		return
	}
	cs := tc.ConnectionState()
	s.out.res.TLSVersion = tls.VersionName(cs.Version)
	s.out.res.Cipher = tls.CipherSuiteName(cs.CipherSuite)
	certOK := s.checkCert(cs.PeerCertificates)
	if tlsa != nil {
		s.out.dane = tlsa.match(cs.PeerCertificates, s.host, s.v.cfg.Now())
	}
	versionOK := cs.Version >= tls.VersionTLS12
	if !versionOK {
		s.add(CodeTLSVersionTooOld, "The server negotiated %s; at least TLS 1.2 is required.", tls.VersionName(cs.Version))
	}
	s.conn, s.br = tc, newReplyReader(tc)
	if !versionOK {
		s.quit()
		return
	}
	ehlo2, err := s.cmd("EHLO "+cfg.HELOName, cfg.Timeout)
	if err != nil {
		s.fail("EHLO after STARTTLS", cfg.Timeout, err)
		return
	}
	if ehlo2.code != 250 {
		s.add(CodeSMTPBadResponse, "EHLO after STARTTLS was answered with %q instead of 250.", ehlo2.String())
		s.quit()
		return
	}
	s.quit()
	s.out.res.OK = certOK
}

// checkCert applies the PKIX checks to the chain the server sent and
// records what it saw. It reports whether every check passed.
func (s *session) checkCert(chain []*x509.Certificate) bool {
	if len(chain) == 0 {
		s.add(CodeTLSHandshakeFailed, "The server sent no certificate.")
		return false
	}
	leaf := chain[0]
	s.out.res.CertSubject = leaf.Subject.String()
	s.out.res.CertIssuer = leaf.Issuer.String()
	s.out.res.CertNotAfter = leaf.NotAfter.UTC()
	now := s.v.cfg.Now()
	ok := true
	// Trust is judged inside the leaf's validity window so that an expired
	// certificate is reported as expired, not also as untrusted.
	at := now
	switch {
	case now.After(leaf.NotAfter):
		ok = false
		s.add(CodeCertExpired, "The certificate expired on %s.", leaf.NotAfter.UTC().Format(time.RFC3339))
		at = leaf.NotAfter.Add(-time.Second)
	case now.Before(leaf.NotBefore):
		ok = false
		s.add(CodeCertExpired, "The certificate is not valid before %s.", leaf.NotBefore.UTC().Format(time.RFC3339))
		at = leaf.NotBefore.Add(time.Second)
	case leaf.NotAfter.Sub(now) < expiringSoon:
		s.add(CodeCertExpiringSoon, "The certificate expires on %s, in less than %d days.",
			leaf.NotAfter.UTC().Format(time.RFC3339), int(expiringSoon/(24*time.Hour)))
	}
	if err := s.v.chains.verify(s.v.roots, chain, at); err != nil {
		ok = false
		s.add(CodeCertUntrusted, "The chain does not verify: %v.", errText(err))
	}
	// RFC 6125 / RFC 9525 as crypto/x509 applies them (SANs only).
	if err := leaf.VerifyHostname(s.host); err != nil {
		ok = false
		s.add(CodeCertHostnameMismatch, "The certificate is for %s, not %s.", certNames(leaf), s.host)
	}
	return ok
}

const expiringSoon = 14 * 24 * time.Hour

func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		if c.Subject.CommonName != "" {
			return fmt.Sprintf("no subject alternative name (common name %q only)", c.Subject.CommonName)
		}
		return "no name"
	}
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}

// hasExtension reports whether an EHLO reply lists keyword (RFC 5321
// §4.1.1.1: one extension per line after the first, keyword first).
func hasExtension(r reply, keyword string) bool {
	for _, l := range r.lines[1:] {
		f, _, _ := strings.Cut(l, " ")
		if strings.EqualFold(f, keyword) {
			return true
		}
	}
	return false
}

// errText is an error as a sentence fragment, without a trailing period.
func errText(err error) string {
	return strings.TrimSuffix(strings.TrimPrefix(err.Error(), "validate: "), ".")
}

// probeSuites are the TLS 1.0–1.2 cipher suites offered: Go's secure ones
// and, so that old servers still complete a handshake and can be reported
// for what they are (a version too old) rather than as a failed handshake,
// the legacy ones except RC4. The checker judges versions and
// certificates; a sender's OpenSSL offers these too.
var probeSuites = func() []uint16 {
	var ids []uint16
	for _, c := range tls.CipherSuites() {
		ids = append(ids, c.ID)
	}
	for _, c := range tls.InsecureCipherSuites() {
		if !strings.Contains(c.Name, "RC4") {
			ids = append(ids, c.ID)
		}
	}
	return ids
}()

// classicalCurves are the key exchanges offered, as a sender's OpenSSL 3.0
// offers them: a post-quantum hybrid adds a kilobyte to the ClientHello and
// CPU to each check, and protects nothing a one-off probe sends.
var classicalCurves = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}
