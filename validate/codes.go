package validate

import (
	"fmt"
	"slices"
	"strings"
)

// Finding codes. They never change meaning; doc.go describes each one.
const (
	CodeDNSNXDomain       = "dns.nxdomain"
	CodeDNSLookupFailed   = "dns.lookup_failed"
	CodeDNSNullMX         = "dns.null_mx"
	CodeDNSImplicitMX     = "dns.implicit_mx"
	CodeDNSNoMX           = "dns.no_mx"
	CodeDNSNoAddress      = "dns.no_address"
	CodeDNSMXCNAME        = "dns.mx_cname"
	CodeDNSMXIPLiteral    = "dns.mx_ip_literal"
	CodeDNSTooManyRecords = "dns.too_many_records"

	CodeMXPrivateAddress = "mx.private_address"
	CodeMXConnectFailed  = "mx.connect_failed"
	CodeMXTimeout        = "mx.timeout"

	CodeSMTPBadResponse = "smtp.bad_response"

	CodeSTARTTLSNotOffered    = "starttls.not_offered"
	CodeSTARTTLSCommandFailed = "starttls.command_failed"

	CodeTLSHandshakeFailed = "tls.handshake_failed"
	CodeTLSVersionTooOld   = "tls.version_too_old"

	CodeCertUntrusted        = "cert.untrusted"
	CodeCertExpired          = "cert.expired"
	CodeCertHostnameMismatch = "cert.hostname_mismatch"
	CodeCertExpiringSoon     = "cert.expiring_soon"

	CodeMTASTSNotPublished   = "mta_sts.not_published"
	CodeMTASTSLookupFailed   = "mta_sts.lookup_failed"
	CodeMTASTSRecordInvalid  = "mta_sts.record_invalid"
	CodeMTASTSFetchFailed    = "mta_sts.policy_fetch_failed"
	CodeMTASTSPolicyInvalid  = "mta_sts.policy_invalid"
	CodeMTASTSMXNotCovered   = "mta_sts.mx_not_covered"
	CodeMTASTSModeTesting    = "mta_sts.mode_testing"
	CodeMTASTSModeNone       = "mta_sts.mode_none"
	CodeMTASTSEnforce        = "mta_sts.enforce"
	CodeMTASTSDuplicateField = "mta_sts.duplicate_field"

	CodeTLSRPTNotPublished  = "tlsrpt.not_published"
	CodeTLSRPTLookupFailed  = "tlsrpt.lookup_failed"
	CodeTLSRPTRecordInvalid = "tlsrpt.record_invalid"
	CodeTLSRPTPublished     = "tlsrpt.published"

	CodeDANELookupFailed = "dane.lookup_failed"
	CodeDANEUnusable     = "dane.unusable"
	CodeDANEMismatch     = "dane.mismatch"
	CodeDANEValid        = "dane.valid"
)

type codeInfo struct {
	severity Severity
	summary  string
	fix      string // appended to the message: how to fix it
}

// codes holds every code's severity, badge summary and the advice that ends
// its message.
var codes = map[string]codeInfo{
	CodeDNSNXDomain:     {SeverityError, "Domain does not exist", "Check the spelling, or publish the domain in DNS."},
	CodeDNSLookupFailed: {SeverityError, "DNS lookup failed", "Make sure the domain's name servers answer (no SERVFAIL, no timeouts, a valid DNSSEC chain) and try again."},
	CodeDNSNullMX:       {SeverityError, "Domain accepts no mail (null MX)", "A domain that publishes a null MX (RFC 7505) takes no mail and cannot be preloaded."},
	CodeDNSImplicitMX:   {SeverityWarning, "No MX records (implicit MX)", "Publish explicit MX records: the preload list names the MX hosts senders must use."},
	CodeDNSNoMX:         {SeverityError, "No MX and no address records", "Publish MX records naming the hosts that receive mail for the domain."},
	CodeDNSNoAddress:    {SeverityError, "MX host has no address", "Publish A and/or AAAA records for the MX host, or remove it from the MX set."},
	CodeDNSMXCNAME:      {SeverityWarning, "MX target is a CNAME", "RFC 5321 §5.1: an MX must name a host with address records, not an alias; point the MX at the canonical name."},
	CodeDNSMXIPLiteral:  {SeverityWarning, "MX target is an IP address", "An MX record must name a host, not an address; publish a host name with A/AAAA records."},

	CodeDNSTooManyRecords: {SeverityError, "Too many MX hosts or addresses", "The checker contacts at most 16 MX hosts per domain and 16 addresses per host; publish fewer, as hosts beyond the limit are not checked."},

	CodeMXPrivateAddress: {SeverityError, "MX address is not public", "MX hosts of a public domain must have public addresses; loopback, private and other non-public addresses are not checked."},
	CodeMXConnectFailed:  {SeverityError, "Cannot connect to MX", "Every address of every MX must accept connections on port 25; fix the server or firewall, or remove the address from DNS."},
	CodeMXTimeout:        {SeverityError, "MX timed out", "The server did not answer in time; every address of every MX must answer promptly."},

	CodeSMTPBadResponse: {SeverityError, "Bad SMTP response", "The server must greet with 220 and answer EHLO with 250, within the protocol's limits."},

	CodeSTARTTLSNotOffered:    {SeverityError, "STARTTLS not offered", "Enable STARTTLS on the server (for Postfix: smtpd_tls_security_level = may, with a certificate)."},
	CodeSTARTTLSCommandFailed: {SeverityError, "STARTTLS command failed", "The server advertised STARTTLS but refused the command; check its TLS configuration (certificate and key files)."},

	CodeTLSHandshakeFailed: {SeverityError, "TLS handshake failed", "Check the server's TLS configuration: protocol versions, cipher suites, certificate and key."},
	CodeTLSVersionTooOld:   {SeverityError, "TLS version too old", "Enable TLS 1.2 or 1.3 on the server; TLS 1.0 and 1.1 are not accepted."},

	CodeCertUntrusted:        {SeverityError, "Certificate not trusted", "Use a certificate from a publicly trusted CA, and send the intermediate certificates with it (the full chain)."},
	CodeCertExpired:          {SeverityError, "Certificate expired", "Renew the certificate and reload the server; automate renewal (ACME)."},
	CodeCertHostnameMismatch: {SeverityError, "Certificate does not match the MX host name", "The certificate's subject alternative names must include the MX host name as published in DNS."},
	CodeCertExpiringSoon:     {SeverityWarning, "Certificate expires soon", "Renew the certificate before it expires; automate renewal (ACME)."},

	CodeMTASTSNotPublished:  {SeverityInfo, "No MTA-STS", "Publishing MTA-STS (RFC 8461) lets senders that do not use the preload list enforce TLS too."},
	CodeMTASTSLookupFailed:  {SeverityWarning, "MTA-STS record lookup failed", "Make sure the _mta-sts TXT name answers."},
	CodeMTASTSRecordInvalid: {SeverityWarning, "MTA-STS record invalid", "RFC 8461 §3.1: publish exactly one TXT record \"v=STSv1; id=...\" at _mta-sts.<domain>."},
	CodeMTASTSFetchFailed:   {SeverityWarning, "MTA-STS policy not fetched", "RFC 8461 §3.3: serve the policy at https://mta-sts.<domain>/.well-known/mta-sts.txt with a valid certificate, status 200, no redirects."},
	CodeMTASTSPolicyInvalid: {SeverityWarning, "MTA-STS policy invalid", "RFC 8461 §3.2: the policy needs version: STSv1, a mode, max_age and mx lines."},
	CodeMTASTSMXNotCovered:  {SeverityWarning, "MX not in MTA-STS policy", "Add the MX host to the policy's mx lines, or senders enforcing MTA-STS will refuse it."},
	CodeMTASTSModeTesting:   {SeverityInfo, "MTA-STS in testing mode", "Switch the policy to mode: enforce once reports show no failures."},
	CodeMTASTSModeNone:      {SeverityInfo, "MTA-STS mode none", "The policy withdraws MTA-STS; publish mode: enforce to protect the domain."},
	CodeMTASTSEnforce:       {SeverityInfo, "MTA-STS enforced", "Nothing to do."},

	CodeMTASTSDuplicateField: {SeverityWarning, "MTA-STS field given twice", "RFC 8461 §3.2: senders use the first entry of a field that may appear once and ignore the others; remove the extra entries so that the record or policy says what you mean."},

	CodeTLSRPTNotPublished:  {SeverityInfo, "No TLS-RPT record", "Publish a TLS-RPT record (RFC 8460) at _smtp._tls.<domain> to learn about TLS failures senders see."},
	CodeTLSRPTLookupFailed:  {SeverityWarning, "TLS-RPT lookup failed", "Make sure the _smtp._tls TXT name answers."},
	CodeTLSRPTRecordInvalid: {SeverityWarning, "TLS-RPT record invalid", "RFC 8460 §3: publish one TXT record \"v=TLSRPTv1; rua=mailto:...\" at _smtp._tls.<domain>."},
	CodeTLSRPTPublished:     {SeverityInfo, "TLS-RPT published", "Nothing to do."},

	CodeDANELookupFailed: {SeverityWarning, "TLSA lookup failed", "Make sure the _25._tcp.<mx> TLSA name answers with valid DNSSEC."},
	CodeDANEUnusable:     {SeverityWarning, "TLSA records unusable", "RFC 7672 §3.1: publish DANE-EE(3) or DANE-TA(2) TLSA records; other usages are ignored for SMTP."},
	CodeDANEMismatch:     {SeverityError, "Certificate does not match TLSA", "Senders that use DANE will refuse this server: update the TLSA records or the certificate so that they match."},
	CodeDANEValid:        {SeverityInfo, "DANE TLSA matches", "Nothing to do."},
}

// finding builds a finding of code; the message is what was seen (format,
// args) followed by the code's advice.
func finding(code, host, ip, format string, args ...any) Finding {
	info, ok := codes[code]
	if !ok {
		panic("validate: unknown finding code " + code)
	}
	msg := fmt.Sprintf(format, args...)
	if info.fix != "" {
		msg += " " + info.fix
	}
	return Finding{Code: code, Severity: info.severity, Summary: info.summary, Message: msg, Host: host, IP: ip}
}

// tlsrptResults maps codes to RFC 8460 §4.3 result types, where one fits.
var tlsrptResults = map[string]string{
	CodeSTARTTLSNotOffered:    "starttls-not-supported",
	CodeSTARTTLSCommandFailed: "starttls-not-supported",
	CodeCertHostnameMismatch:  "certificate-host-mismatch",
	CodeCertExpired:           "certificate-expired",
	CodeCertUntrusted:         "certificate-not-trusted",
	CodeTLSHandshakeFailed:    "validation-failure",
	CodeTLSVersionTooOld:      "validation-failure",
	CodeDANEMismatch:          "validation-failure",
	CodeDANEUnusable:          "tlsa-invalid",
	CodeMTASTSFetchFailed:     "sts-policy-fetch-error",
	CodeMTASTSPolicyInvalid:   "sts-policy-invalid",
}

// TLSRPTResultType returns the RFC 8460 §4.3 result type that a sender
// would report for a finding code ("" when none fits), so that findings
// can be compared with the TLS reports a domain receives.
func TLSRPTResultType(code string) string { return tlsrptResults[code] }

// CodeDoc describes one finding code.
type CodeDoc struct {
	Code     string
	Severity Severity
	Summary  string
}

// AllCodes lists every finding code with its severity and summary, sorted by
// code, for documentation and the web UI.
func AllCodes() []CodeDoc {
	out := make([]CodeDoc, 0, len(codes))
	for c, i := range codes {
		out = append(out, CodeDoc{Code: c, Severity: i.severity, Summary: i.summary})
	}
	slices.SortFunc(out, func(a, b CodeDoc) int { return strings.Compare(a.Code, b.Code) })
	return out
}
