// Package listgen is the STARTTLS preload list: its format, its strict
// reader, its linter, its signatures, and the Postfix and Exim
// configuration rendered from it. It imports no other package of this
// module, so that the client on MTA hosts stays small.
//
// # The list: policy-list.json
//
// The field names are those of the EFF STARTTLS Everywhere list (version
// 0.1), with one field added, "serial". A list is one JSON object (RFC 8259)
// with exactly these seven members, each required and each present once:
//
//	"author"          string: who publishes the list (UTF-8, at most 1024 bytes).
//	"expires"         string: time after which a client must not use the list.
//	"policies"        object: mail domain -> policy.
//	"policy-aliases"  object: alias name -> policy (shared by many domains).
//	"serial"          integer: 0 to 2^63-1, larger in every published list;
//	                  inside the signed bytes, so clients can refuse a rollback.
//	"timestamp"       string: when the list was made.
//	"version"         string: "1", this format (FormatVersion).
//
// Times are RFC 3339 in exactly one form: UTC, whole seconds, upper-case
// "T" and "Z", as in "2026-11-23T07:00:00Z".
//
// A policy is an object that is either
//
//	{"mode": "enforce" | "testing", "mxs": [pattern, ...]}   (1 to 64 patterns, no duplicates)
//	{"policy-alias": name}                                   (in "policies" only)
//
// and has no other members. "enforce" asks senders to deliver only over TLS
// with a certificate that is valid for an MX host matching a pattern;
// "testing" asks them to report failures but deliver anyway. A domain that
// refers to an alias has the alias's policy; an alias cannot refer to
// another alias.
//
// Names. Mail domains and MX host names are written as lower-case A-labels
// (IDNA, RFC 5890): labels of 1 to 63 letters, digits and hyphens, not
// starting or ending with a hyphen, at least two labels, at most 253 bytes,
// no trailing dot, and a last label that is not all digits. Domains are
// matched exactly: "example.com" does not cover "lists.example.com". Alias
// names are 1 to 63 bytes of lower-case letters, digits, '.', '_' and '-',
// starting with a letter or digit.
//
// MX patterns. A pattern is either a host name, which matches exactly that
// name, or "*." followed by a host name, which matches any name with exactly
// one more label on the left (RFC 8461 §4.1): "*.mail.example.com" matches
// "mx1.mail.example.com", but neither "mail.example.com" nor
// "a.mx1.mail.example.com". The EFF list's suffix form ".example.com" is
// read (by ImportEFF and NormalizePattern) as "*.example.com".
//
// Parse is strict and bounded: at most MaxSize bytes, valid UTF-8 strings,
// no unknown, missing or duplicate members (object keys included), no data
// after the object, the forms above. Errors name the JSON path and byte
// offset, e.g. `$.policies["example.com"].mxs[1]`.
//
// # Canonical bytes
//
// A list has one serialisation, which Marshal writes and which is what gets
// signed:
//
//   - members in byte order of their keys, at every level (so the top level
//     is author, expires, policies, policy-aliases, serial, timestamp,
//     version; a policy is mode, mxs or policy-alias);
//   - each member on its own line, indented by two spaces per level, written
//     as `"key": value`; members separated by ",\n"; an empty object is "{}";
//   - each array element on its own line; "mxs" sorted in byte order;
//   - strings escaped as RFC 8785 §3.2.2.2 does: only '"', '\' and the
//     controls below U+0020 are escaped (\b \t \n \f \r, else \u00xx with
//     lower-case hex), everything else is written as its UTF-8 bytes;
//   - serial in decimal without leading zeros; times in the form above;
//   - no byte order mark, "\n" line ends, one "\n" after the closing brace.
//
// This is what Go's encoding/json MarshalIndent(v, "", "  ") writes for the
// same data, except for the escaping of '<', '>', '&', U+2028 and U+2029,
// which only the author string can contain. Example, a complete list:
//
//	{
//	  "author": "starttls-preload",
//	  "expires": "2026-12-07T07:00:00Z",
//	  "policies": {
//	    "example.com": {
//	      "mode": "enforce",
//	      "mxs": [
//	        "*.mail.example.com",
//	        "mx1.example.com"
//	      ]
//	    },
//	    "example.net": {
//	      "policy-alias": "hosted"
//	    }
//	  },
//	  "policy-aliases": {
//	    "hosted": {
//	      "mode": "testing",
//	      "mxs": [
//	        "*.mx.hosting.example"
//	      ]
//	    }
//	  },
//	  "serial": 42,
//	  "timestamp": "2026-11-23T07:00:00Z",
//	  "version": "1"
//	}
//
// Lint checks what Parse does not: every domain is a registrable name and
// not a public suffix (golang.org/x/net/publicsuffix), names are valid
// IDNA, aliases are defined and used, wildcard suffixes are not public
// suffixes, "expires" is after "timestamp", and more; see the Problem codes.
// LintWith with LintOptions.AllowTestTLD also accepts RFC 6761 ".test"
// domains, for labs.
//
// # Domain names
//
// ParseDomain is the one normaliser of submitted domain names, used by
// check, domains add, the list and the web and GitHub doors: it returns
// the list's form (lower-case A-labels, no trailing dot) or a *NameError
// with a stable code (domain.invalid, domain.idna, domain.ip_literal,
// domain.too_long, domain.public_suffix, domain.unknown_tld) and one
// sentence saying why. NormalizeName is its syntax part, for MX host names.
//
// # Signatures
//
// A list FILE is published with two detached signatures over its exact
// bytes, made with one key (ECDSA P-256, or Ed25519):
//
//   - FILE.sig: standard base64, without line breaks, of an ECDSA-SHA256
//     signature in ASN.1 DER (or of the raw 64-byte Ed25519 signature), made
//     with sigstore's pkg/signature. Verify with
//     `openssl dgst -sha256 -verify pub.pem -signature <(base64 -d FILE.sig) FILE`
//     or `cosign verify-blob --key pub.pem --signature FILE.sig FILE`.
//   - FILE.sshsig: an OpenSSH signature (PROTOCOL.sshsig) in namespace
//     "starttls-preload" with hash sha256, armoured as ssh-keygen writes it.
//     Verify with
//     `ssh-keygen -Y verify -f allowed_signers -I starttls-preload -n starttls-preload -s FILE.sshsig < FILE`,
//     where allowed_signers holds AllowedSignersLine.
//
// # Trusted keys and rotation
//
// A client trusts a set of keys, read from one key file by
// ParsePublicKeys: PEM "PUBLIC KEY" blocks, allowed_signers lines and
// authorized_keys style lines, at most MaxKeys, so that the service can
// announce its next key before it switches to it (MarshalPublicKeys and
// AllowedSigners write such files). An allowed_signers line counts only if
// ssh-keygen would use it for `-I starttls-preload -n starttls-preload`:
// its principals and its namespaces="..." option (when given) must match
// "starttls-preload" (OpenSSH pattern lists: '*', '?', '!' negation).
// Lines that count and carry cert-authority, valid-after or valid-before
// are refused rather than half honoured: a key's time in service is set by
// adding and removing its line.
//
// Verify and VerifyParse accept a list when every signature given verifies
// and all of them were made by one and the same trusted key, which they
// return so that clients can log it (Fingerprint). The SSHSIG names its
// key; a FILE.sig alone is tried with each trusted key of its kind. One
// SHA-256 of the list serves both signatures and every ECDSA key tried; an
// Ed25519 FILE.sig costs one pass over the list per Ed25519 key tried.
//
// # Rendering
//
// RenderPostfix and RenderExim (or Render, for both in one pass) turn a
// list into configuration that Postfix and Exim enforce:
//
//   - Postfix: an smtp_tls_policy_maps table, "domain secure match=p1:p2" for
//     each enforced domain; PostfixMainCF gives the main.cf lines. Postfix
//     compares match= names with the certificate's names, not with the MX
//     host name, and its ".suffix" matches any depth: "*.suffix" is written
//     ".suffix", the closest Postfix has.
//   - Exim: an lsearch file keyed on the recipient domain,
//     "domain: mode=enforce mxs=p1:p2", read by the transport options of
//     EximTransportSnippet: hosts_require_tls and tls_verify_hosts for listed
//     domains, the certificate checked against the MX name as routed, and
//     event_action refusing MX hosts that match no pattern. A missing file
//     means "require verified TLS everywhere", never clear text.
//
// "testing" policies are comments in both unless RenderOptions.EarlyAdopter.
// An expired list renders as EmptyPolicy: valid files that enforce nothing,
// with a loud comment, which is what a client installs when it must stop
// enforcing.
package listgen
