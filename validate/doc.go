// Package validate decides whether a mail domain may be preloaded: it
// checks STARTTLS and certificates on every address of every MX host, and
// reports what it saw as findings with stable codes.
//
// For a domain, Check:
//
//  1. looks up MX records (RFC 5321 §5.1, RFC 7505 null MX) with its own
//     DNS client (miekg/dns; UDP, TCP on truncation; a fast retry then
//     back-off) and records whether the answer was DNSSEC-authenticated;
//  2. resolves A and AAAA of every MX host and checks every address,
//     refusing non-public addresses unless Config.AllowPrivate;
//  3. per address: connect to port 25, wait for 220, EHLO, STARTTLS (must
//     be advertised and answer 220), TLS with SNI = the MX host name,
//     version >= TLS 1.2, the chain verified to trusted roots with the
//     intermediates the server sent, the MX host name matched, expiry;
//     EHLO again over TLS; QUIT. Every read is bounded (line length, lines
//     per reply, bytes per connection) and every step has a deadline;
//  4. per domain: MTA-STS (RFC 8461), TLS-RPT (RFC 8460) and DANE
//     (RFC 7672, only when DNSSEC-authenticated). These inform; only a
//     DANE mismatch is an error.
//
// A domain is eligible when it has at least one MX, every address of every
// MX passed step 3, and no finding is an error.
//
// Check normalises the domain with NormalizeDomain, the checker's copy of
// the syntax part of listgen.ParseDomain (this package imports none of the
// project's): the same names are refused and rewritten alike, and a test
// in cmd/starttls-preload runs both over one table. The doors (check,
// domains add, the list, the web and GitHub doors) use listgen.ParseDomain,
// which also refuses public suffixes and unknown top-level domains.
//
// A Round shares host look-ups and (MX host, address) checks across the
// domains checked through it, so a bulk run dials each MX address once.
//
// # Finding codes
//
// Codes never change meaning. Severity in brackets.
//
//	dns.nxdomain              [error]   the domain does not exist (NXDOMAIN)
//	dns.lookup_failed         [error]   a DNS query for the domain or an MX host failed (SERVFAIL, timeout): not judged as "no MX"
//	dns.null_mx               [error]   the domain publishes a null MX (RFC 7505): it takes no mail and cannot be listed
//	dns.implicit_mx           [warning] no MX records; the domain's own A/AAAA is the implicit MX (preloading wants explicit MX)
//	dns.no_mx                 [error]   neither MX records nor an address for the domain
//	dns.no_address            [error]   an MX host has no A or AAAA records
//	dns.mx_cname              [warning] an MX target is a CNAME (RFC 5321 §5.1 wants a canonical name)
//	dns.mx_ip_literal         [warning] an MX target is an IP address instead of a host name
//	dns.too_many_records      [error]   more than 16 MX hosts, or more than 16 addresses for one host: the rest would go unchecked
//	mx.private_address        [error]   an MX address is loopback, private, link-local or otherwise non-public; not contacted
//	mx.connect_failed         [error]   the TCP connection to port 25 failed or was lost
//	mx.timeout                [error]   connecting, the greeting, a command or the TLS handshake exceeded its deadline
//	smtp.bad_response         [error]   a greeting other than 220, EHLO refused, a malformed or oversized reply, data after STARTTLS's 220
//	starttls.not_offered      [error]   the EHLO reply does not list STARTTLS
//	starttls.command_failed   [error]   STARTTLS was answered with something other than 220 (e.g. 454)
//	tls.handshake_failed      [error]   the TLS handshake failed
//	tls.version_too_old       [error]   the server negotiated TLS 1.0 or 1.1
//	cert.untrusted            [error]   the chain does not verify to a trusted root with the intermediates sent
//	cert.expired              [error]   the certificate is expired or not yet valid
//	cert.hostname_mismatch    [error]   the certificate's names do not match the MX host name
//	cert.expiring_soon        [warning] the certificate expires within 14 days
//	mta_sts.not_published     [info]    no _mta-sts TXT record
//	mta_sts.lookup_failed     [warning] the _mta-sts TXT look-up failed
//	mta_sts.record_invalid    [warning] the _mta-sts record is malformed, or there is more than one
//	mta_sts.policy_fetch_failed [warning] the policy could not be fetched over HTTPS (certificate, status, redirect, size, type)
//	mta_sts.policy_invalid    [warning] the fetched policy does not parse (RFC 8461 §3.2)
//	mta_sts.mx_not_covered    [warning] an MX host matches none of the policy's mx patterns
//	mta_sts.mode_testing      [info]    the policy is in testing mode
//	mta_sts.mode_none         [info]    the policy has mode none
//	mta_sts.enforce           [info]    the policy is in enforce mode
//	mta_sts.duplicate_field   [warning] the record or the policy gives a field that may appear once (id, v; version, mode, max_age) more than once: senders use the first (RFC 8461 §3.2)
//	tlsrpt.not_published      [info]    no _smtp._tls TXT record
//	tlsrpt.lookup_failed      [warning] the _smtp._tls TXT look-up failed
//	tlsrpt.record_invalid     [warning] the TLS-RPT record is malformed, or there is more than one
//	tlsrpt.published          [info]    a TLS-RPT record names where reports go
//	dane.lookup_failed        [warning] the TLSA look-up of a DNSSEC-signed MX host failed
//	dane.unusable             [warning] the TLSA set has no DANE-TA(2)/DANE-EE(3) record usable for SMTP
//	dane.mismatch             [error]   the presented chain satisfies none of the authenticated TLSA records: DANE senders refuse it (a DANE-TA record that matches the leaf itself is a mismatch, as in OpenSSL, Postfix and Exim: RFC 6698 §2.1.1, RFC 7671 §5.2.2)
//	dane.valid                [info]    the presented certificates match the authenticated TLSA records
package validate
