package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/validate"
)

func init() { register(newCheckCmd) }

func newCheckCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [flags] DOMAIN...",
		Short: "Check whether mail domains can be preloaded (STARTTLS and certificates on every MX address)",
		Long: `check runs the validator on each domain: MX look-up, then on every address of
every MX host: STARTTLS, TLS 1.2 or newer, a certificate chain that verifies
to a trusted root with the intermediates the server sends, the MX host name,
expiry. MTA-STS, TLS-RPT and DANE are looked up and reported too.

Each finding has a stable code (for example starttls.not_offered or
cert.expired), a severity and a message that says how to fix it. A domain is
eligible when every address of every MX passes and no finding is an error.

Bulk runs (--domains-file, one domain a line, # comments) check each MX
address once per run however many domains share it, and print results in
input order as they complete.

The flags are also configuration keys (validate.resolver, validate.ca_file,
validate.allow_private, validate.timeout, validate.greeting_timeout,
validate.concurrency, validate.smtp_port, validate.helo_name), in
starttls-preload.yaml or as
STARTTLS_PRELOAD_VALIDATE_* environment variables. Domain names are taken as
the list takes them: no IP address, public suffix or unknown top-level
domain; list.allow_test_tld (STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD) admits
RFC 6761 ".test" names for labs. Every finding code is
listed, one line each, in the validate package's documentation.

Exit status: 0 every domain eligible, 1 some domain not eligible, 2 usage or
configuration error.`,
		Example: `  # One domain, readable report
  starttls-preload check example.com

  # JSON lines, one object per domain
  starttls-preload check --json example.com example.org

  # Bulk, 100 domains at a time, through a local validating resolver
  starttls-preload check --json --domains-file domains.txt --concurrency 100 \
    --resolver 127.0.0.1:53 > results.jsonl`,
		RunE: runCheck,
	}
	f := cmd.Flags()
	f.Bool("json", false, "print one JSON object per domain per line")
	f.String("domains-file", "", "read domains from FILE, one a line ('-' for stdin)")
	addCheckerFlags(cmd)
	f.Duration("greeting-timeout", 60*time.Second, "how long to wait for the 220 greeting")
	f.Int("concurrency", 64, "domains checked at the same time in bulk runs")
	return cmd
}

func runCheck(cmd *cobra.Command, args []string) error {
	c, err := loadConfig(cmd, checkerFlagKeys(map[string]string{
		"validate.greeting_timeout": "greeting-timeout",
		"validate.concurrency":      "concurrency",
	}))
	if err != nil {
		return err
	}
	asJSON, _ := cmd.Flags().GetBool("json")
	file, _ := cmd.Flags().GetString("domains-file")
	if len(args) == 0 && file == "" {
		return usagef("no domain given: pass DOMAIN... or --domains-file FILE (see %s --help)", cmd.CommandPath())
	}
	// listgen.ParseDomain is the one normaliser: check refuses what the list
	// would (list.allow_test_tld admits ".test").
	names := listgen.NameOptions{AllowTestTLD: c.List.AllowTestTLD}
	for i, a := range args {
		n, err := parseDomainArg(a, names)
		if err != nil {
			return err
		}
		args[i] = n
	}
	vc := c.Validate
	if vc.Concurrency < 1 {
		return usagef("--concurrency must be at least 1")
	}
	if vc.Timeout <= 0 || vc.GreetingTimeout <= 0 {
		return usagef("--timeout and --greeting-timeout must be positive")
	}
	var in io.Reader
	total := len(args)
	if file != "" {
		if file == "-" {
			in = cmd.InOrStdin()
		} else {
			f, err := os.Open(file)
			if err != nil {
				return usagef("--domains-file: %v", err)
			}
			defer f.Close()
			n, err := countDomains(f)
			if err != nil {
				return usagef("--domains-file: %v", err)
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return usagef("--domains-file: %v", err)
			}
			total += n
			in = f
		}
	}
	vcfg := vc.checker()
	vcfg.Concurrency = max(vc.Concurrency, 1) * 4
	v, err := validate.New(vcfg)
	if err != nil {
		return usagef("%v", strings.TrimPrefix(err.Error(), "validate: "))
	}

	out := bufio.NewWriter(cmd.OutOrStdout())
	defer out.Flush()
	var prog *progress
	if file != "" && isTerminal(cmd.ErrOrStderr()) {
		prog = newProgress(cmd.ErrOrStderr(), total)
		// Results on the same terminal: the bar is cleared before each
		// result and drawn again after it.
		prog.shared = isTerminal(cmd.OutOrStdout())
		defer prog.finish()
	}
	r := &checkRun{round: namedRound{v.NewRound(), names}, concurrency: vc.Concurrency}
	var failed, invalid int
	emit := func(j job) error {
		if j.err != nil {
			if errors.Is(j.err, validate.ErrInvalidDomain) {
				invalid++
				slog.Warn("skipping invalid domain", "line", j.line, "domain", j.domain)
				return nil
			}
			return j.err
		}
		if !j.res.Eligible {
			failed++
		}
		if prog != nil && prog.shared {
			prog.clear()
		}
		var werr error
		if asJSON {
			werr = writeJSONResult(out, j.res)
		} else {
			werr = writeReport(out, j.res)
		}
		if werr == nil {
			werr = out.Flush()
		}
		if prog != nil {
			prog.add(j.res.Eligible)
		}
		return werr
	}
	err = r.run(cmd.Context(), domainSource(args, in), emit)
	if prog != nil {
		prog.finish()
	}
	if err := out.Flush(); err != nil {
		return failf("writing results: %v", err)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return failf("interrupted")
	case err != nil:
		return failf("%v", err)
	case invalid > 0:
		return failf("%d invalid domain name(s) in --domains-file", invalid)
	case failed > 0:
		return &exitError{code: exitFindings}
	}
	return nil
}

// job is one domain to check and, once done, its result.
type job struct {
	domain string
	line   int
	res    *validate.Result
	err    error
	done   chan struct{}
}

// checkRun checks a stream of domains with bounded concurrency and hands
// the results to emit in input order. At most 2*concurrency domains are
// in memory at a time, whatever the number of domains.
type checkRun struct {
	round interface {
		Check(ctx context.Context, domain string) (*validate.Result, error)
	}
	concurrency int
}

func (r *checkRun) run(ctx context.Context, next func() (string, int, bool, error), emit func(job) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *job, r.concurrency)
	sem := make(chan struct{}, r.concurrency)
	var wg sync.WaitGroup
	var readErr error
	go func() {
		defer close(queue)
		for {
			d, line, ok, err := next()
			if err != nil {
				readErr = err
				return
			}
			if !ok {
				return
			}
			j := &job{domain: d, line: line, done: make(chan struct{})}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				defer close(j.done)
				j.res, j.err = r.round.Check(ctx, j.domain)
			})
			select {
			case queue <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	var err error
	for j := range queue {
		<-j.done
		if err == nil {
			if err = emit(*j); err != nil {
				cancel()
			}
		}
	}
	wg.Wait()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil {
		err = readErr
	}
	return err
}

// domainSource yields the command-line domains, then those of in (one a
// line; blank lines and # comments skipped), with their line numbers.
func domainSource(args []string, in io.Reader) func() (string, int, bool, error) {
	var sc *bufio.Scanner
	if in != nil {
		sc = bufio.NewScanner(in)
		sc.Buffer(make([]byte, 4096), 4096)
	}
	line := 0
	return func() (string, int, bool, error) {
		if len(args) > 0 {
			d := args[0]
			args = args[1:]
			return d, 0, true, nil
		}
		for sc != nil && sc.Scan() {
			line++
			s := sc.Text()
			if i := strings.IndexByte(s, '#'); i >= 0 {
				s = s[:i]
			}
			if s = strings.TrimSpace(s); s != "" {
				return s, line, true, nil
			}
		}
		if sc != nil && sc.Err() != nil {
			return "", line, false, fmt.Errorf("--domains-file line %d: %w", line+1, sc.Err())
		}
		return "", line, false, nil
	}
}

func countDomains(r io.Reader) (int, error) {
	next := domainSource(nil, r)
	n := 0
	for {
		_, _, ok, err := next()
		if err != nil || !ok {
			return n, err
		}
		n++
	}
}

// jsonResult is the --json line: the validator's result as is.
func writeJSONResult(w io.Writer, res *validate.Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// writeReport prints a readable report of one domain.
func writeReport(w io.Writer, res *validate.Result) error {
	var b strings.Builder
	verdict := "eligible"
	if !res.Eligible {
		verdict = "NOT eligible"
	}
	fmt.Fprintf(&b, "%s: %s", res.Domain, verdict)
	if res.DNSSEC {
		b.WriteString(" (DNSSEC)")
	}
	b.WriteString("\n")
	for _, mx := range res.MXs {
		fmt.Fprintf(&b, "  MX %d %s\n", mx.Preference, mx.Host)
		if len(mx.Addresses) == 0 {
			b.WriteString("    (no address checked)\n")
		}
		for _, a := range mx.Addresses {
			status := "FAIL"
			if a.OK {
				status = "ok"
			}
			fmt.Fprintf(&b, "    %-15s %-4s", a.IP, status)
			if a.TLSVersion != "" {
				fmt.Fprintf(&b, " %s %s", a.TLSVersion, a.Cipher)
			}
			b.WriteString("\n")
			if a.CertSubject != "" {
				fmt.Fprintf(&b, "      certificate %s, issuer %s, expires %s\n", a.CertSubject, a.CertIssuer, a.CertNotAfter.Format("2006-01-02"))
			}
		}
	}
	if res.MTASTS != nil {
		fmt.Fprintf(&b, "  MTA-STS mode %s, id %s, mx %s, max_age %d\n", res.MTASTS.Mode, res.MTASTS.ID, strings.Join(res.MTASTS.MX, " "), res.MTASTS.MaxAge)
	}
	for _, f := range res.Findings {
		where := strings.TrimSpace(f.Host + " " + f.IP)
		if where != "" {
			where = " (" + where + ")"
		}
		fmt.Fprintf(&b, "  %-7s %s%s: %s\n", f.Severity, f.Code, where, f.Summary)
		if f.Severity != validate.SeverityInfo {
			fmt.Fprintf(&b, "          %s\n", f.Message)
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progress is a one-line progress bar on a terminal.
type progress struct {
	w        io.Writer
	total    int
	done     atomic.Int64
	eligible atomic.Int64
	start    time.Time
	mu       sync.Mutex
	last     time.Time
	finished bool
	shared   bool // results go to the same terminal: redraw after each
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, start: time.Now()}
}

func (p *progress) add(eligible bool) {
	n := p.done.Add(1)
	if eligible {
		p.eligible.Add(1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); p.shared || now.Sub(p.last) >= 100*time.Millisecond || int(n) == p.total {
		p.last = now
		p.draw()
	}
}

func (p *progress) draw() {
	n := int(p.done.Load())
	const width = 30
	fill := width
	if p.total > 0 {
		fill = min(width*n/p.total, width)
	}
	rate := float64(n) / max(time.Since(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d domains, %d eligible, %.0f/s ", strings.Repeat("#", fill), strings.Repeat(".", width-fill), n, p.total, p.eligible.Load(), rate)
}

// clear erases the bar's line.
func (p *progress) clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return
	}
	p.finished = true
	p.draw()
	fmt.Fprintln(p.w)
}
