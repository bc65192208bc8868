// Package submit is the web door of the STARTTLS preload list: pages
// (html/template, usable without JavaScript, no inline script) where a
// domain's owner checks a domain, submits it, proves ownership, follows its
// way towards the list and asks for its removal, each with a JSON twin
// under /api/v1/ for programs.
//
// Pages:
//
//	GET  /                                  what the list is, the check form, set-up for MTA operators
//	GET  /check?domain=D                    the live check, findings per MX host and address; the submit form when eligible
//	POST /submit                            the submit form (domain, contact, mode, mx_patterns, csrf)
//	GET  /domains/{domain}                  status: state, progress, check history chart, findings, decisions, serial
//	POST /domains/{domain}/verify           check the pending proof's DNS TXT record
//	POST /domains/{domain}/removal          ask for removal (a new proof to give)
//	GET  /domains/{domain}/confirm?token=T  the mailed link: a page with a button, consumes nothing
//	POST /domains/{domain}/confirm          the button: proves ownership with the token
//	POST /domains/{domain}/withdraw         the other button: drops a pending submission (add token)
//	GET  /list[?q=TEXT]                     the current list, searchable
//	GET  /stats                             list size by mode over time
//	GET  /static/...                        the style sheet
//
// API (JSON; errors are {"error": "...", "code": "..."}):
//
//	GET  /api/v1/check?domain=D             the object `check --json` prints
//	POST /api/v1/submissions                {"domain","contact","mode","mx_patterns"} → 202 with the proof
//	POST /api/v1/domains/{domain}/verify    checks the pending DNS proof
//	POST /api/v1/domains/{domain}/removal   → 202 with the removal proof
//	GET  /api/v1/domains/{domain}/confirm?token=T  {"domain","purpose"}: what the token proves, consuming nothing
//	POST /api/v1/domains/{domain}/confirm   {"token"} proves with the mailed token
//	POST /api/v1/domains/{domain}/withdraw  {"token"} drops a pending submission
//	GET  /api/v1/setup                      the MTA operators' set-up of this instance
//	GET  /api/v1/domains/{domain}           status (admission's fields plus progress and the serial listing it)
//	GET  /api/v1/domains?name=A&name=B      batch status; without name, admission's paged list
//	GET  /api/v1/list[?q=TEXT]              the current list
//	GET  /api/v1/stats                      list size by mode over time
//
// The rules live below this package: names are normalised and refused only
// by listgen.ParseDomain, and every change of a domain's life is one call
// of the lifecycle package (Submit, RequestRemoval, PeekToken, ConfirmToken,
// VerifyDNS), each one store transaction. Checks go through a consumer-side
// Checker (a validate.Validator with the operator's settings: the web door
// never permits private addresses on its own).
//
// Abuse: every POST form carries a CSRF token (a double-submit cookie) and
// passes net/http.CrossOriginProtection; checks, submissions, verifications
// and mails are rate-limited per client address and per domain (429 with
// Retry-After); bodies are bounded; every answer carries a CSP without
// inline script, frame-ancestors 'none', nosniff and a referrer policy.
// Contacts are never shown. The client address comes from X-Forwarded-For
// only when the peer is a trusted proxy.
package submit
