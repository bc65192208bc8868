package listgen

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// RenderOptions adjust RenderPostfix and RenderExim.
type RenderOptions struct {
	// EarlyAdopter enforces "testing" policies too; otherwise they are
	// written as comments only, so that they never override the DANE or
	// MTA-STS maps that come first.
	EarlyAdopter bool
	// CAFile, when set, is the trust anchor file for Exim's certificate
	// checks (written as ca= on each line); for Postfix it goes into
	// smtp_tls_CAfile (see PostfixMainCF). Empty means the system roots.
	CAFile string
	// Now, when set, is the rendering time: a list that has expired by then
	// renders as EmptyPolicy (a client never enforces an expired list).
	Now time.Time
}

// entries returns the list's domains in byte order with their resolved
// policies, plus the number of entries skipped because they are invalid
// (a list that did not come from Parse) or refer to an undefined alias.
func entries(l *List) (out []entry, skipped int) {
	return resolve(l, sortedPolicies(l.Policies), true)
}

// resolve resolves the aliases of the sorted entries es in place and drops
// those that refer to an undefined alias, and, when check is set, those
// that are invalid (when Marshal has accepted the list, none are).
func resolve(l *List, es []entry, check bool) (out []entry, skipped int) {
	out = es
	n := 0
	for _, e := range out {
		if check && checkHostname(e.key) != nil {
			skipped++
			continue
		}
		if e.p.PolicyAlias != "" {
			a, ok := l.PolicyAliases[e.p.PolicyAlias]
			if !ok {
				skipped++
				continue
			}
			e.p = a
		}
		if check && checkPolicyShape(e.p, true) != nil {
			skipped++
			continue
		}
		out[n] = e
		n++
	}
	return out[:n], skipped
}

func expired(l *List, o RenderOptions) bool {
	return !o.Now.IsZero() && !o.Now.Before(l.Expires)
}

func expiredReason(l *List) string {
	return fmt.Sprintf("policy list serial %d expired at %s", l.Serial, l.Expires.UTC().Format(timeLayout))
}

// headerLines describes the list a file was rendered from.
func headerLines(b []byte, l *List, o RenderOptions) []byte {
	b = fmt.Appendf(b, "# Rendered from the STARTTLS preload list serial %d (timestamp %s, expires %s).\n",
		l.Serial, l.Timestamp.UTC().Format(timeLayout), l.Expires.UTC().Format(timeLayout))
	if !o.Now.IsZero() {
		b = fmt.Appendf(b, "# Rendered at %s.\n", o.Now.UTC().Format(timeLayout))
	}
	if o.EarlyAdopter {
		b = append(b, "# Early adopter: \"testing\" policies are enforced too.\n"...)
	} else {
		b = append(b, "# \"testing\" policies are listed as comments only: they are not enforced.\n"...)
	}
	return b
}

// PostfixMainCF returns the main.cf lines that make Postfix use a policy
// table rendered by RenderPostfix. mapPath is "TYPE:FILE" (e.g.
// "hash:/etc/postfix/starttls-preload", after postmap) or a bare file name,
// used as "texthash:FILE" (no postmap needed, but re-read only when smtp(8)
// processes restart: run `postfix reload` after each change). caFile is the
// trust anchor file for certificate checks; "" means Debian's system bundle.
func PostfixMainCF(mapPath, caFile string) string {
	if !strings.Contains(mapPath, ":") {
		mapPath = "texthash:" + mapPath
	}
	if caFile == "" {
		caFile = "/etc/ssl/certs/ca-certificates.crt"
	}
	return `# STARTTLS preload list: per-destination TLS policy (main.cf).
# If you already use DANE or MTA-STS policy maps, list them BEFORE ours:
# Postfix uses the first table that has an entry for the next-hop domain, e.g.
#   smtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix, ` + mapPath + `
# The key is the next-hop domain: a transport_maps or relayhost entry for a
# domain changes it to [host]:port and our entry is then not used.
smtp_tls_security_level = may
smtp_tls_CAfile = ` + caFile + `
smtp_tls_policy_maps = ` + mapPath + `
`
}

// RenderPostfix returns an smtp_tls_policy_maps table (postmap(1) input)
// for the list: one line "domain secure match=p1:p2" per enforced domain,
// in byte order of domains. See the header it writes for the main.cf lines.
//
// Postfix's match= names are compared with the names in the server's
// certificate, not with the MX host name, and its ".suffix" form matches
// names at any depth below suffix: our "*.suffix" (exactly one label) is
// written as ".suffix", the closest Postfix has, which is wider.
func RenderPostfix(l *List, o RenderOptions) []byte {
	if expired(l, o) {
		pf, _ := EmptyPolicy(expiredReason(l))
		return pf
	}
	es, skipped := entries(l)
	return renderPostfix(l, o, es, skipped)
}

// Render returns what RenderPostfix and RenderExim return, sorting and
// checking the list once for both, and writing the two at the same time.
func Render(l *List, o RenderOptions) (postfix, exim []byte) {
	if expired(l, o) {
		return EmptyPolicy(expiredReason(l))
	}
	es, skipped := entries(l)
	done := make(chan struct{})
	go func() {
		defer close(done)
		exim = renderExim(l, o, es, skipped)
	}()
	postfix = renderPostfix(l, o, es, skipped)
	<-done
	return postfix, exim
}

// linesSize is the exact size of the entry lines: per line, the domain,
// fixed bytes, the patterns joined by ':' and "# testing: " where needed.
func linesSize(es []entry, fixed int, o RenderOptions) int {
	n := 0
	for _, e := range es {
		n += len(e.key) + fixed + len(e.p.MXs) - 1
		for _, m := range e.p.MXs {
			n += len(m)
		}
		if e.p.Mode != ModeEnforce && !o.EarlyAdopter {
			n += len("# testing: ")
		}
	}
	return n
}

func renderPostfix(l *List, o RenderOptions, es []entry, skipped int) []byte {
	b := make([]byte, 0, 4096+linesSize(es, len(" secure match=\n"), o))
	b = append(b, "# Postfix smtp_tls_policy_maps table: the STARTTLS preload list.\n"...)
	b = headerLines(b, l, o)
	b = append(b, `#
# "secure" requires STARTTLS and a certificate that chains to a trusted root
# and matches one of the match= names. Postfix compares those names with the
# names in the certificate, not with the MX host name. The list's pattern
# "*.example.net" (exactly one label more) is written ".example.net", which in
# Postfix matches names at ANY depth below example.net.
#
# main.cf:
`...)
	for line := range strings.Lines(PostfixMainCF("hash:/etc/postfix/starttls-preload", "")) {
		if !strings.HasPrefix(line, "#") {
			b = append(b, "#   "...)
		}
		b = append(b, line...)
	}
	if skipped > 0 {
		b = fmt.Appendf(b, "# Skipped %d invalid entries (undefined alias or bad name): run `starttls-preload list lint`.\n", skipped)
	}
	b = append(b, '\n')
	for _, e := range es {
		enforce := e.p.Mode == ModeEnforce || o.EarlyAdopter
		if !enforce {
			b = append(b, "# testing: "...)
		}
		b = append(b, e.key...)
		b = append(b, " secure match="...)
		for i, m := range e.p.MXs {
			if i > 0 {
				b = append(b, ':')
			}
			if suffix, ok := strings.CutPrefix(m, "*"); ok {
				b = append(b, suffix...) // ".example.net"
			} else {
				b = append(b, m...)
			}
		}
		b = append(b, '\n')
	}
	return b
}

// EximTransportSnippet returns the options to add to Exim's remote smtp
// transport (e.g. remote_smtp in Debian's configuration) so that it enforces
// the lsearch file at path, as RenderExim writes it. For a domain in the
// file, Exim connects only to MX hosts that match the domain's patterns
// (event_action refuses the others at tcp:connect), requires STARTTLS
// (hosts_require_tls) and a certificate that verifies (tls_verify_hosts)
// for the MX host name as routed (tls_verify_cert_hostnames). Every
// expansion is guarded by ${if exists{path}...}: a missing file means
// "require verified TLS for every domain", never clear text (a failed lookup
// on a missing file would otherwise deliver in clear).
//
// The options replace any of the same name in that transport; if it already
// has an event_action, merge the two by hand. Verified with Exim 4.96.
func EximTransportSnippet(path string) string {
	f := path
	lookup := func(found, notFound string) string {
		return "${if exists{" + f + "}{${lookup{$domain}lsearch{" + f + "}{" + found + "}{" + notFound + "}}}{" + notFound + "}}"
	}
	hostOK := "${if forany{${extract{mxs}{$value}}}{or{{eq{$item}{${lc:$host}}}{eq{$item}{${sg{${lc:$host}}{\\N^[^.]+\\.\\N}{*.}}}}}}{}{$host is not an MX host of $domain in the STARTTLS preload list}}"
	return `  # STARTTLS preload list (` + path + `): enforce its policies.
  # $domain must be the one recipient domain of each delivery.
  multi_domain = false
  # Enforced domains (and every domain while the file is missing): STARTTLS
  # is required and the certificate must verify ...
  hosts_require_tls = ${if exists{` + f + `}{${lookup{$domain}lsearch{` + f + `}{*}{}}}{*}}
  tls_verify_hosts = ${if exists{` + f + `}{${lookup{$domain}lsearch{` + f + `}{*}{}}}{*}}
  # ... for the MX host name as routed (the default, spelled out) ...
  tls_verify_cert_hostnames = *
  tls_verify_certificates = ` + lookup("${extract{ca}{$value}{$value}{system}}", "system") + `
  # ... and only MX hosts that match the domain's patterns are contacted:
  # "*.example.net" matches exactly one more label (RFC 8461 section 4.1).
  event_action = ${if eq{$event_name}{tcp:connect}{` + lookup(hostOK, "") + `}{}}
`
}

// RenderExim returns the lsearch file that EximTransportSnippet reads: one
// line per enforced domain, in byte order of domains:
//
//	example.com: mode=enforce mxs=*.mail.example.com:mx1.example.com
//
// with " ca=FILE" added when o.CAFile is set.
func RenderExim(l *List, o RenderOptions) []byte {
	if expired(l, o) {
		_, ex := EmptyPolicy(expiredReason(l))
		return ex
	}
	es, skipped := entries(l)
	return renderExim(l, o, es, skipped)
}

func renderExim(l *List, o RenderOptions, es []entry, skipped int) []byte {
	ca := ""
	if o.CAFile != "" {
		ca = " ca=" + strconv.Quote(o.CAFile)
	}
	b := make([]byte, 0, 8192+linesSize(es, len(": mode=enforce mxs=\n")+len(ca), o))
	b = append(b, "# Exim lsearch file keyed on the recipient domain: the STARTTLS preload list.\n"...)
	b = headerLines(b, l, o)
	b = append(b, "# Transport options that use this file:\n#\n"...)
	for line := range strings.Lines(EximTransportSnippet("/etc/exim4/starttls-preload")) {
		b = append(b, '#')
		b = append(b, line...)
	}
	if skipped > 0 {
		b = fmt.Appendf(b, "# Skipped %d invalid entries (undefined alias or bad name): run `starttls-preload list lint`.\n", skipped)
	}
	b = append(b, '\n')
	for _, e := range es {
		enforce := e.p.Mode == ModeEnforce || o.EarlyAdopter
		if !enforce {
			b = append(b, "# testing: "...)
		}
		b = append(b, e.key...)
		b = append(b, ": mode=enforce mxs="...)
		for i, m := range e.p.MXs {
			if i > 0 {
				b = append(b, ':')
			}
			b = append(b, m...)
		}
		b = append(b, ca...)
		b = append(b, '\n')
	}
	return b
}

// EmptyPolicy returns a Postfix table and an Exim lsearch file that enforce
// nothing, with a loud comment giving reason: what a client installs when it
// must stop enforcing (for example, the list expired). Both are valid
// files: a missing file would make Postfix defer all mail and our Exim
// snippet require TLS everywhere.
func EmptyPolicy(reason string) (postfix, exim []byte) {
	reason = strings.Join(strings.Fields(reason), " ") // one line
	text := "# !!! STARTTLS PRELOAD LIST NOT ENFORCED !!!\n" +
		"# " + reason + "\n" +
		"# This file deliberately holds no policies: mail is delivered with\n" +
		"# opportunistic TLS only until a valid, signed list is installed again.\n"
	return []byte("# Postfix smtp_tls_policy_maps table.\n" + text), []byte("# Exim lsearch file.\n" + text)
}
