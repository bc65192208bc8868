package listgen

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// Problem is one thing wrong with a list: a stable dotted Code, the JSON
// path of the offending value, and a message that says how to fix it.
type Problem struct {
	Code    string `json:"code"`
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.Path + ": " + p.Message + " [" + p.Code + "]" }

// Problem codes. A code never changes meaning.
const (
	CodeParse             = "list.parse"              // the file is not a list Parse accepts
	CodeNotCanonical      = "list.not_canonical"      // valid, but not the bytes Marshal writes
	CodeVersion           = "list.version"            // version is not FormatVersion
	CodeSerial            = "list.serial"             // serial is negative
	CodeTimestamp         = "list.timestamp"          // timestamp missing or out of range
	CodeExpiresBefore     = "list.expires_before"     // expires is not after timestamp
	CodeAuthor            = "list.author"             // author empty, too long or not UTF-8
	CodeDomainInvalid     = "domain.invalid"          // not a host name in the list's form
	CodeDomainIDNA        = "domain.idna"             // an xn-- label that is not a valid A-label
	CodeDomainSuffix      = "domain.public_suffix"    // the domain is a public suffix
	CodeDomainUnknownTLD  = "domain.unknown_tld"      // the domain is not under a known top-level domain
	CodePolicyInvalid     = "policy.invalid"          // mode/mxs/policy-alias shape is wrong
	CodeAliasUndefined    = "alias.undefined"         // a domain refers to an alias that does not exist
	CodeAliasInvalid      = "alias.invalid"           // alias name or alias policy is wrong
	CodeAliasUnused       = "alias.unused"            // an alias no domain refers to
	CodeMXInvalid         = "mx.invalid"              // an MX pattern that is not a name or "*.name"
	CodeMXIDNA            = "mx.idna"                 // an MX pattern with a bad xn-- label
	CodeMXDuplicate       = "mx.duplicate"            // the same pattern twice in one policy
	CodeMXSuffix          = "mx.public_suffix"        // "*.suffix" where suffix is a public suffix
	CodeMXTooMany         = "mx.too_many"             // more than MaxMXs patterns
	CodeMXNone            = "mx.none"                 // a policy without MX patterns
	CodeModeInvalid       = "policy.mode"             // mode is neither testing nor enforce
	CodeAliasChain        = "alias.chain"             // an alias that refers to another alias
	CodePolicyAliasFields = "policy.alias_and_fields" // policy-alias together with mode or mxs
)

// Lint checks a list beyond what Parse does (and again what Parse does, for
// a list built in Go). It returns the problems in a stable order, none for
// a good list.
func Lint(l *List) []Problem {
	var ps []Problem
	add := func(code, path, format string, a ...any) {
		ps = append(ps, Problem{Code: code, Path: path, Message: fmt.Sprintf(format, a...)})
	}
	if l.Version != FormatVersion {
		add(CodeVersion, "$.version", "version is %q; this format is %q", l.Version, FormatVersion)
	}
	if l.Serial < 0 {
		add(CodeSerial, "$.serial", "serial is negative")
	}
	if err := checkAuthor(l.Author); err != nil {
		add(CodeAuthor, "$.author", "%v", err)
	} else if strings.TrimSpace(l.Author) == "" {
		add(CodeAuthor, "$.author", "author is empty: say who publishes the list")
	}
	if l.Timestamp.IsZero() {
		add(CodeTimestamp, "$.timestamp", "timestamp is missing")
	}
	if !l.Expires.After(l.Timestamp) {
		add(CodeExpiresBefore, "$.expires", "expires (%s) must be after timestamp (%s)",
			l.Expires.UTC().Format(timeLayout), l.Timestamp.UTC().Format(timeLayout))
	}

	used := make(map[string]bool, len(l.PolicyAliases))
	for _, name := range sortedKeys(l.PolicyAliases) {
		path := keyPath("policy-aliases", name)
		if err := checkAliasName(name); err != nil {
			add(CodeAliasInvalid, path, "%v", err)
		}
		lintPolicy(add, path, l.PolicyAliases[name], true)
	}
	for _, d := range sortedKeys(l.Policies) {
		path := keyPath("policies", d)
		lintDomain(add, path, d)
		p := l.Policies[d]
		if p.PolicyAlias != "" {
			used[p.PolicyAlias] = true
			if _, ok := l.PolicyAliases[p.PolicyAlias]; !ok {
				add(CodeAliasUndefined, path+".policy-alias", "alias %q is not defined in policy-aliases", p.PolicyAlias)
			}
		}
		lintPolicy(add, path, p, false)
	}
	for _, name := range sortedKeys(l.PolicyAliases) {
		if !used[name] {
			add(CodeAliasUnused, keyPath("policy-aliases", name), "no domain refers to alias %q: remove it", name)
		}
	}
	return ps
}

func lintDomain(add func(code, path, format string, a ...any), path, d string) {
	if err := checkHostname(d); err != nil {
		add(CodeDomainInvalid, path, "%v", err)
		return
	}
	if strings.Contains(d, "xn--") {
		if err := checkIDNA(d); err != nil {
			add(CodeDomainIDNA, path, "%v", err)
		}
	}
	suffix, icann := publicsuffix.PublicSuffix(d)
	switch {
	case suffix == d:
		add(CodeDomainSuffix, path, "%q is a public suffix, not a registrable domain", d)
	case !icann && !strings.Contains(suffix, "."):
		// The default rule "*": the top-level domain is not in the list.
		add(CodeDomainUnknownTLD, path, "%q is not under a known top-level domain", d)
	}
}

func lintPolicy(add func(code, path, format string, a ...any), path string, p Policy, isAlias bool) {
	if p.PolicyAlias != "" {
		switch {
		case isAlias:
			add(CodeAliasChain, path+".policy-alias", "an alias cannot refer to another alias")
		case p.Mode != "" || len(p.MXs) > 0:
			add(CodePolicyAliasFields, path, "a policy with policy-alias has no mode or mxs")
		}
		if err := checkAliasName(p.PolicyAlias); err != nil {
			add(CodeAliasInvalid, path+".policy-alias", "%v", err)
		}
		return
	}
	if p.Mode != ModeTesting && p.Mode != ModeEnforce {
		add(CodeModeInvalid, path+".mode", "mode must be %q or %q, not %q", ModeTesting, ModeEnforce, p.Mode)
	}
	switch {
	case len(p.MXs) == 0:
		add(CodeMXNone, path+".mxs", "mxs must list at least one MX pattern")
	case len(p.MXs) > MaxMXs:
		add(CodeMXTooMany, path+".mxs", "%d MX patterns, at most %d", len(p.MXs), MaxMXs)
	}
	for i, m := range p.MXs {
		mpath := fmt.Sprintf("%s.mxs[%d]", path, i)
		if err := checkPattern(m); err != nil {
			add(CodeMXInvalid, mpath, "%v", err)
			continue
		}
		if slices.Index(p.MXs, m) < i {
			add(CodeMXDuplicate, mpath, "%q is listed twice", m)
		}
		host, wild := strings.CutPrefix(m, "*.")
		if strings.Contains(host, "xn--") {
			if err := checkIDNA(host); err != nil {
				add(CodeMXIDNA, mpath, "%v", err)
			}
		}
		if wild {
			if suffix, _ := publicsuffix.PublicSuffix(host); suffix == host {
				add(CodeMXSuffix, mpath, "%q would match any host under the public suffix %q", m, host)
			}
		}
	}
}

// LintBytes lints a list file: a parse failure is one CodeParse problem;
// otherwise Lint's problems, plus CodeNotCanonical when b is not exactly the
// bytes Marshal writes for it (the form that is signed).
func LintBytes(b []byte) []Problem {
	l, err := Parse(b)
	if err != nil {
		p := Problem{Code: CodeParse, Path: "$", Message: err.Error()}
		var pe *ParseError
		if errors.As(err, &pe) {
			p.Path = pe.Path
			p.Message = fmt.Sprintf("%s (byte %d)", pe.Msg, pe.Offset)
		}
		return []Problem{p}
	}
	ps := Lint(l)
	if m, err := Marshal(l); err == nil && !bytes.Equal(m, b) {
		ps = append(ps, Problem{Code: CodeNotCanonical, Path: "$",
			Message: "not in canonical form (key order, indentation, sorted mxs, one final newline): rewrite it with `starttls-preload list lint --fix`"})
	}
	return ps
}
