package prcheck

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/validate"
)

// Checker runs the validator's full check of one domain.
type Checker interface {
	Check(ctx context.Context, domain string) (*validate.Result, error)
}

var (
	_ Checker = (*validate.Validator)(nil)
	_ Checker = (*validate.Round)(nil)
)

// Defaults of Options.
const (
	DefaultMaxListSize  = 25 << 20
	DefaultMaxChecked   = 1000
	DefaultRemovalLabel = "removal-approved"
	DefaultConcurrency  = 32
)

// Options are the rules' settings. The zero value means the defaults.
type Options struct {
	// AllowTestTLD admits RFC 6761 ".test" names (list.allow_test_tld).
	AllowTestTLD bool
	// RemovalLabel approves a removal without a TXT proof.
	RemovalLabel string
	// MaxListSize is the largest head list read, in bytes.
	MaxListSize int64
	// MaxChecked is the most added plus changed domains one pull request
	// may carry.
	MaxChecked int
	// Concurrency bounds the domains checked at the same time.
	Concurrency int
}

func (o Options) withDefaults() Options {
	if o.RemovalLabel == "" {
		o.RemovalLabel = DefaultRemovalLabel
	}
	if o.MaxListSize <= 0 {
		o.MaxListSize = DefaultMaxListSize
	}
	if o.MaxChecked <= 0 {
		o.MaxChecked = DefaultMaxChecked
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	return o
}

// File is policy-list.json at one commit, as the door read it. When Size
// exceeds the cap the door does not download it: Data is nil.
type File struct {
	Absent bool   // no such file at that commit
	Size   int64  // size from the API's metadata
	Data   []byte // the bytes, when read
}

// Input is one pull request, as data.
type Input struct {
	// URL is the pull request's URL, <repository html_url>/pull/N.
	URL     string
	HeadSHA string
	Labels  []string
	// LabelStale: the removal label is on the pull request, but was not
	// applied after the door had answered this head without it (the
	// door knows); it approves nothing, so that a push after a
	// maintainer's label does not ride on it.
	LabelStale bool
	Base       File
	Head       File
}

// Refusal codes (see the package documentation).
const (
	RefuseTooLarge   = "list.too_large"
	RefuseNotUTF8    = "list.not_utf8"
	RefuseMissing    = "list.missing"
	RefuseTooMany    = "list.too_many_changes"
	RefuseBaseBroken = "list.base_unreadable"
)

// Refusal is why a pull request was not checked domain by domain.
type Refusal struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CodeMXNotCovered is the finding for an MX host that no MX pattern of the
// domain's policy in the head list matches.
const CodeMXNotCovered = "pr.mx_not_covered"

// DomainReport is the answer for one changed domain.
type DomainReport struct {
	Domain string `json:"domain"`
	Kind   Kind   `json:"change"`
	// Policy is the head policy (the base one for a removal).
	Policy listgen.Policy `json:"policy"`
	// Result is the validator's verdict (nil for removals, or when the
	// checker could not work: then CheckError says why).
	Result     *validate.Result `json:"result,omitempty"`
	CheckError string           `json:"check_error,omitempty"`
	// Findings are the check's findings plus the door's own (MX coverage).
	Findings []validate.Finding `json:"findings"`
	Passed   bool               `json:"passed"`
	Proof    Proof              `json:"proof"`
}

// OK reports whether the domain needs nothing more.
func (d DomainReport) OK() bool { return d.Passed && d.Proof.Proven }

// Report is the answer to one pull request.
type Report struct {
	URL     string `json:"url"`
	HeadSHA string `json:"head_sha"`
	// Refusal, when set, is why nothing was checked.
	Refusal *Refusal `json:"refusal,omitempty"`
	// Problems are the head list's lint problems (nothing is checked then).
	Problems []listgen.Problem `json:"problems"`
	Domains  []DomainReport    `json:"domains"`
	// ServiceList marks the service's own list pull request (publish
	// github): the list it published, every domain admitted by its
	// repeated checks. Nothing is checked.
	ServiceList bool `json:"service_list,omitempty"`
}

// NothingToCheck reports whether the pull request leaves every policy as
// it was.
func (r *Report) NothingToCheck() bool {
	return r.Refusal == nil && len(r.Problems) == 0 && len(r.Domains) == 0
}

// Success reports whether the pull request passes: not refused, the list
// lints clean, and every changed domain passes and is proven.
func (r *Report) Success() bool {
	if r.Refusal != nil || len(r.Problems) > 0 {
		return false
	}
	for _, d := range r.Domains {
		if !d.OK() {
			return false
		}
	}
	return true
}

// Count returns how many domains are of kind k.
func (r *Report) Count(k Kind) int {
	n := 0
	for _, d := range r.Domains {
		if d.Kind == k {
			n++
		}
	}
	return n
}

// Evaluate answers a pull request: the refusals and lint problems first
// (cheap, before any network use), then each added or changed domain's
// check and proof, and each removal's proof. The error is non-nil only
// when ctx is done; everything the pull request does wrong is in the report.
func Evaluate(ctx context.Context, in Input, checker Checker, txt TXTLookup, o Options) (*Report, error) {
	o = o.withDefaults()
	r := &Report{URL: in.URL, HeadSHA: in.HeadSHA, Problems: []listgen.Problem{}, Domains: []DomainReport{}}
	refuse := func(code, format string, a ...any) (*Report, error) {
		r.Refusal = &Refusal{Code: code, Message: fmt.Sprintf(format, a...)}
		return r, nil
	}
	if in.Head.Absent {
		return refuse(RefuseMissing, "This pull request deletes policy-list.json; the list file must stay.")
	}
	for _, f := range []File{in.Head, in.Base} {
		if f.Absent {
			continue
		}
		if f.Size > o.MaxListSize || int64(len(f.Data)) > o.MaxListSize {
			return refuse(RefuseTooLarge, "policy-list.json is %d bytes, more than the %d bytes this check reads. A pull request should add or change a few domains; split large changes.", max(f.Size, int64(len(f.Data))), o.MaxListSize)
		}
	}
	if !utf8.Valid(in.Head.Data) {
		off := invalidUTF8At(in.Head.Data)
		return refuse(RefuseNotUTF8, "policy-list.json is not valid UTF-8 (first bad byte at offset %d). Save the file as UTF-8.", off)
	}
	var base *listgen.List
	if !in.Base.Absent {
		var err error
		base, err = listgen.Parse(in.Base.Data)
		if err != nil {
			return refuse(RefuseBaseBroken, "policy-list.json on the base branch does not parse (%v); a maintainer must fix it before pull requests can be checked.", err)
		}
	}
	lo := listgen.LintOptions{AllowTestTLD: o.AllowTestTLD}
	if ps := listgen.LintBytesWith(in.Head.Data, lo); len(ps) > 0 {
		r.Problems = ps
		return r, nil
	}
	head, err := listgen.Parse(in.Head.Data)
	if err != nil { // linted clean above, so this cannot happen
		r.Problems = []listgen.Problem{{Code: listgen.CodeParse, Path: "$", Message: err.Error()}}
		return r, nil
	}
	changes := Diff(base, head)
	r.Problems = append(r.Problems, checkNames(changes, o)...)
	if len(r.Problems) > 0 {
		return r, nil
	}
	checked := 0
	for _, c := range changes {
		if c.Kind != Removed {
			checked++
		}
	}
	if checked > o.MaxChecked {
		return refuse(RefuseTooMany, "This pull request adds or changes %d domains; at most %d are checked in one pull request. Split it into smaller pull requests.", checked, o.MaxChecked)
	}

	changed := make(map[string]bool, len(changes))
	for _, c := range changes {
		changed[c.Domain] = true
	}
	r.Domains = make([]DomainReport, len(changes))
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for i, c := range changes {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			r.Domains[i] = evaluateDomain(ctx, c, in, checker, txt, o)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return r, nil
}

// checkNames puts every name a pull request adds or changes through the
// one normaliser, listgen.ParseDomain, as the web door does: only names it
// returns unchanged are looked up, checked or shown. (Lint refuses the
// same names today; this keeps the door right if the two ever differ.)
func checkNames(changes []Change, o Options) []listgen.Problem {
	var ps []listgen.Problem
	for _, c := range changes {
		if c.Kind == Removed {
			continue
		}
		path := fmt.Sprintf("$.policies[%q]", c.Domain)
		n, err := listgen.ParseDomain(c.Domain, listgen.NameOptions{AllowTestTLD: o.AllowTestTLD})
		var ne *listgen.NameError
		switch {
		case errors.As(err, &ne):
			ps = append(ps, listgen.Problem{Code: ne.Code, Path: path, Message: ne.Reason})
		case err != nil || n != c.Domain:
			ps = append(ps, listgen.Problem{Code: listgen.CodeDomainInvalid, Path: path, Message: "the name is not in the list's normal form (lower-case A-labels, no trailing dot)"})
		}
	}
	return ps
}

func evaluateDomain(ctx context.Context, c Change, in Input, checker Checker, txt TXTLookup, o Options) DomainReport {
	d := DomainReport{Domain: c.Domain, Kind: c.Kind, Policy: c.New, Findings: []validate.Finding{}}
	if c.Kind == Removed {
		d.Policy = c.Old
		d.Passed = true // a removal needs no check, only a proof
		if slices.Contains(in.Labels, o.RemovalLabel) && !in.LabelStale {
			d.Proof = LabelProof(c.Domain, in.URL, o.RemovalLabel)
			return d
		}
	} else if checker == nil {
		d.CheckError = "No checker is configured."
	} else {
		res, err := checker.Check(ctx, c.Domain)
		switch {
		case err != nil && ctx.Err() != nil:
			return d
		case err != nil:
			d.CheckError = fmt.Sprintf("The checker could not check %s: %v.", c.Domain, err)
		default:
			d.Result = res
			d.Findings = append(d.Findings, res.Findings...)
			d.Findings = append(d.Findings, coverage(c.New, res)...)
			d.Passed = res.Eligible && !hasError(d.Findings)
		}
	}
	p, err := VerifyProof(ctx, txt, c.Domain, in.URL, nil)
	if err != nil {
		return d
	}
	if c.Kind == Removed && !p.Proven && in.LabelStale && slices.Contains(in.Labels, o.RemovalLabel) {
		p.Message += fmt.Sprintf(" The label %q was on the pull request before its latest commit was answered, so it approves nothing: a maintainer who agrees with the removals as they now are removes the label, waits for the answer, and applies it again.", o.RemovalLabel)
	}
	d.Proof = p
	return d
}

// coverage reports each MX host of the result that no pattern of p
// matches: senders enforcing the list would refuse to deliver to it.
func coverage(p listgen.Policy, res *validate.Result) []validate.Finding {
	var fs []validate.Finding
	for _, mx := range res.MXs {
		if p.MatchesAny(mx.Host) {
			continue
		}
		fs = append(fs, validate.Finding{
			Code:     CodeMXNotCovered,
			Severity: validate.SeverityError,
			Summary:  "MX host not in the policy's patterns",
			Message:  fmt.Sprintf("The MX host %s matches none of the policy's MX patterns. Add it (or a \"*.\" pattern covering it) to \"mxs\"; senders enforcing the list would refuse to deliver to it.", mx.Host),
			Host:     mx.Host,
		})
	}
	return fs
}

func hasError(fs []validate.Finding) bool {
	for _, f := range fs {
		if f.Severity == validate.SeverityError {
			return true
		}
	}
	return false
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// RemovalLabelOrDefault is RemovalLabel or its default.
func (o Options) RemovalLabelOrDefault() string { return o.withDefaults().RemovalLabel }

// MaxListSizeOrDefault is MaxListSize or its default.
func (o Options) MaxListSizeOrDefault() int64 { return o.withDefaults().MaxListSize }
