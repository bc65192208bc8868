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

// LintOptions says which names Lint accepts beyond the registrable domains
// of the public DNS.
type LintOptions struct {
	// AllowTestTLD accepts domains under the RFC 6761 §6.2 ".test"
	// top-level domain, as ParseDomain's NameOptions.AllowTestTLD does
	// (configuration key list.allow_test_tld), so a lab's list lints clean.
	AllowTestTLD bool
}

// Lint checks a list beyond what Parse does (and again what Parse does, for
// a list built in Go). It returns the problems sorted by JSON path (those
// of one path in the order of the checks), none for a good list.
// It is LintWith with the zero LintOptions.
func Lint(l *List) []Problem { return LintWith(l, LintOptions{}) }

// LintWith is Lint with options.
func LintWith(l *List, o LintOptions) []Problem {
	lt := linter{o: o}
	if l.Version != FormatVersion {
		lt.add(CodeVersion, "$.version", "version is %q; this format is %q", l.Version, FormatVersion)
	}
	if l.Serial < 0 {
		lt.add(CodeSerial, "$.serial", "serial is negative")
	}
	if err := checkAuthor(l.Author); err != nil {
		lt.add(CodeAuthor, "$.author", "%v", err)
	} else if strings.TrimSpace(l.Author) == "" {
		lt.add(CodeAuthor, "$.author", "author is empty: say who publishes the list")
	}
	if l.Timestamp.IsZero() {
		lt.add(CodeTimestamp, "$.timestamp", "timestamp is missing")
	}
	if !l.Expires.After(l.Timestamp) {
		lt.add(CodeExpiresBefore, "$.expires", "expires (%s) must be after timestamp (%s)",
			l.Expires.UTC().Format(timeLayout), l.Timestamp.UTC().Format(timeLayout))
	}

	for name, p := range l.PolicyAliases {
		if err := checkAliasName(name); err != nil {
			lt.add(CodeAliasInvalid, keyPath("policy-aliases", name), "%v", err)
		}
		lt.policy("policy-aliases", name, p, true)
	}
	used := make(map[string]bool, len(l.PolicyAliases))
	if len(l.Policies) < parallelMin {
		for d, p := range l.Policies {
			lt.entry(l, d, p, used)
		}
	} else {
		// Chunks of the map, in turn linted here and on another goroutine,
		// through a few reused buffers (no copy of the million entries);
		// problems are sorted below anyway.
		chunk := lintChunk
		free := make(chan []entry, 4)
		for range cap(free) {
			free <- make([]entry, 0, chunk)
		}
		work := make(chan []entry, cap(free))
		lt2 := linter{o: o}
		used2 := make(map[string]bool, len(l.PolicyAliases))
		done := make(chan struct{})
		go func() {
			defer close(done)
			for es := range work {
				for _, e := range es {
					lt2.entry(l, e.key, e.p, used2)
				}
				free <- es[:0]
			}
		}()
		es := <-free
		mine := false
		for d, p := range l.Policies {
			es = append(es, entry{d, p})
			if len(es) < chunk {
				continue
			}
			if mine {
				for _, e := range es {
					lt.entry(l, e.key, e.p, used)
				}
				es = es[:0]
			} else {
				work <- es
				es = <-free
			}
			mine = !mine
		}
		for _, e := range es {
			lt.entry(l, e.key, e.p, used)
		}
		close(work)
		<-done
		lt.ps = append(lt.ps, lt2.ps...)
		for a := range used2 {
			used[a] = true
		}
	}
	for name := range l.PolicyAliases {
		if !used[name] {
			lt.add(CodeAliasUnused, keyPath("policy-aliases", name), "no domain refers to alias %q: remove it", name)
		}
	}
	// Map order is random: sort the (few) problems, not the million domains.
	// Problems of one path keep the order of the checks.
	slices.SortStableFunc(lt.ps, func(a, b Problem) int { return strings.Compare(a.Path, b.Path) })
	return lt.ps
}

// lintChunk is the number of entries Lint hands to a goroutine at a time.
var lintChunk = 4096

// linter collects problems; paths are built only for problems found.
type linter struct {
	o  LintOptions
	ps []Problem
}

// entry lints one domain and its policy, noting the alias it uses.
func (lt *linter) entry(l *List, d string, p Policy, used map[string]bool) {
	lt.domain(d)
	if a := p.PolicyAlias; a != "" {
		used[a] = true
		if _, ok := l.PolicyAliases[a]; !ok {
			lt.add(CodeAliasUndefined, keyPath("policies", d)+".policy-alias", "alias %q is not defined in policy-aliases", a)
		}
	}
	lt.policy("policies", d, p, false)
}

func (lt *linter) add(code, path, format string, a ...any) {
	lt.ps = append(lt.ps, Problem{Code: code, Path: path, Message: fmt.Sprintf(format, a...)})
}

func (lt *linter) domain(d string) {
	if err := checkHostname(d); err != nil {
		lt.add(CodeDomainInvalid, keyPath("policies", d), "%v", err)
		return
	}
	if strings.Contains(d, "xn--") {
		if err := checkIDNA(d); err != nil {
			lt.add(CodeDomainIDNA, keyPath("policies", d), "%v", err)
		}
	}
	// RFC 6761 §6.2: ".test" names only where the options allow them.
	if lt.o.AllowTestTLD && strings.HasSuffix(d, ".test") {
		return
	}
	suffix, icann := publicsuffix.PublicSuffix(d)
	switch {
	case suffix == d:
		lt.add(CodeDomainSuffix, keyPath("policies", d), "%q is a public suffix, not a registrable domain", d)
	case !icann && !strings.Contains(suffix, "."):
		// The default rule "*": the top-level domain is not in the list.
		lt.add(CodeDomainUnknownTLD, keyPath("policies", d), "%q is not under a known top-level domain", d)
	}
}

func (lt *linter) policy(section, key string, p Policy, isAlias bool) {
	path := func(suffix string) string { return keyPath(section, key) + suffix }
	mpath := func(i int) string { return path(fmt.Sprintf(".mxs[%d]", i)) }
	if p.PolicyAlias != "" {
		switch {
		case isAlias:
			lt.add(CodeAliasChain, path(".policy-alias"), "an alias cannot refer to another alias")
		case p.Mode != "" || len(p.MXs) > 0:
			lt.add(CodePolicyAliasFields, path(""), "a policy with policy-alias has no mode or mxs")
		}
		if err := checkAliasName(p.PolicyAlias); err != nil {
			lt.add(CodeAliasInvalid, path(".policy-alias"), "%v", err)
		}
		return
	}
	if p.Mode != ModeTesting && p.Mode != ModeEnforce {
		lt.add(CodeModeInvalid, path(".mode"), "mode must be %q or %q, not %q", ModeTesting, ModeEnforce, p.Mode)
	}
	switch {
	case len(p.MXs) == 0:
		lt.add(CodeMXNone, path(".mxs"), "mxs must list at least one MX pattern")
	case len(p.MXs) > MaxMXs:
		lt.add(CodeMXTooMany, path(".mxs"), "%d MX patterns, at most %d", len(p.MXs), MaxMXs)
	}
	for i, m := range p.MXs {
		if err := checkPattern(m); err != nil {
			lt.add(CodeMXInvalid, mpath(i), "%v", err)
			continue
		}
		if slices.Index(p.MXs, m) < i {
			lt.add(CodeMXDuplicate, mpath(i), "%q is listed twice", m)
		}
		host, wild := strings.CutPrefix(m, "*.")
		if strings.Contains(host, "xn--") {
			if err := checkIDNA(host); err != nil {
				lt.add(CodeMXIDNA, mpath(i), "%v", err)
			}
		}
		if wild {
			if suffix, _ := publicsuffix.PublicSuffix(host); suffix == host {
				lt.add(CodeMXSuffix, mpath(i), "%q would match any host under the public suffix %q", m, host)
			}
		}
	}
}

// LintBytes lints a list file: a parse failure is one CodeParse problem;
// otherwise Lint's problems, plus CodeNotCanonical when b is not exactly the
// bytes Marshal writes for it (the form that is signed).
func LintBytes(b []byte) []Problem { return LintBytesWith(b, LintOptions{}) }

// LintBytesWith is LintBytes with options.
func LintBytesWith(b []byte, o LintOptions) []Problem {
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
	ps := LintWith(l, o)
	if m, err := Marshal(l); err == nil && !bytes.Equal(m, b) {
		ps = append(ps, Problem{Code: CodeNotCanonical, Path: "$",
			Message: "not in canonical form (key order, indentation, sorted mxs, one final newline): rewrite it with `starttls-preload list lint --fix`"})
	}
	return ps
}
