package validate

import (
	"cmp"
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// Check checks one domain. The error is non-nil only when the checker
// itself cannot work (an invalid name, a cancelled context); everything the
// domain does wrong is a finding in the result.
func (v *Validator) Check(ctx context.Context, domain string) (*Result, error) {
	return v.NewRound().Check(ctx, domain)
}

// Round shares each MX host's address look-ups, TLSA look-up and each
// (MX host, address) check across every domain checked through it, so that
// a bulk run contacts each MX address once. Use one Round per run: results
// are as old as the round. It holds at most a bounded number of hosts
// (older entries are dropped and checked again if needed). Safe for
// concurrent use.
type Round struct {
	v     *Validator
	hosts cache[*hostInfo]
	addrs cache[*addrCheck]
}

// roundCacheSize bounds the entries each cache of a Round keeps alive.
const roundCacheSize = 8192

// NewRound returns a Round that shares checks across the domains checked
// through it.
func (v *Validator) NewRound() *Round {
	return &Round{v: v, hosts: cache[*hostInfo]{max: roundCacheSize}, addrs: cache[*addrCheck]{max: roundCacheSize}}
}

// Check checks one domain, reusing the round's checks of shared MX hosts.
func (r *Round) Check(ctx context.Context, domain string) (*Result, error) {
	name, err := NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	v := r.v
	res := &Result{Domain: name, MXs: []MXResult{}, Findings: []Finding{}, CheckedAt: v.cfg.Now().UTC()}

	// The domain's three look-ups go out together.
	ans, errs := v.dns.queryAll(ctx,
		question{name, dns.TypeMX},
		question{"_mta-sts." + name, dns.TypeTXT},
		question{"_smtp._tls." + name, dns.TypeTXT})
	var wg sync.WaitGroup
	policy, fetch := v.mtastsRecord(name, ans[1], errs[1])
	if fetch {
		wg.Go(func() { policy = v.fetchMTASTS(ctx, name, policy) })
	}
	rpt := v.checkTLSRPT(name, ans[2], errs[2])
	mxs, secure, dnsFindings := v.lookupMX(ctx, name, ans[0], errs[0])
	res.DNSSEC = secure
	res.Findings = append(res.Findings, dnsFindings...)

	type hostOut struct {
		info   *hostInfo
		checks []*addrCheck
	}
	outs := make([]hostOut, len(mxs))
	// Every host, and every address of a host, is checked at the same
	// time; the last of each runs on the calling goroutine, which would
	// otherwise only wait.
	goEach(&wg, len(mxs), func(i int) {
		mx := mxs[i]
		info := r.hosts.do(ctx, mx.host, func() *hostInfo { return v.resolveHost(ctx, mx.host, mx.literal, secure) })
		checks := make([]*addrCheck, len(info.addrs))
		var awg sync.WaitGroup
		goEach(&awg, len(info.addrs), func(j int) {
			ip := info.addrs[j]
			checks[j] = r.addrs.do(ctx, mx.host+" "+ip.String(), func() *addrCheck {
				return v.checkAddress(ctx, mx.host, ip, info.tlsa)
			})
		})
		awg.Wait()
		outs[i] = hostOut{info, checks}
	})
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	allOK := len(mxs) > 0
	var dane []Finding
	for i, mx := range mxs {
		o := outs[i]
		mr := MXResult{Host: mx.host, Preference: mx.pref, Addresses: make([]AddressResult, 0, len(o.checks))}
		res.Findings = append(res.Findings, o.info.findings...)
		if len(o.checks) == 0 {
			allOK = false
		}
		for _, c := range o.checks {
			mr.Addresses = append(mr.Addresses, c.res)
			res.Findings = append(res.Findings, c.findings...)
			if !c.res.OK {
				allOK = false
			}
		}
		// RFC 7672 §2.2: DANE applies when the MX RRset and the host's
		// address and TLSA records are all DNSSEC-authenticated.
		if secure {
			dane = append(dane, o.info.daneFindings(mx.host, o.checks, secure)...)
		}
		res.MXs = append(res.MXs, mr)
	}
	res.Findings = append(res.Findings, dane...)
	res.Findings = append(res.Findings, policy.findings(mxs)...)
	res.MTASTS = policy.info()
	res.Findings = append(res.Findings, rpt...)
	res.Eligible = allOK && !res.HasErrors()
	return res, nil
}

// goEach runs f(0), ..., f(n-1) at the same time: the last on the calling
// goroutine, the others on new goroutines added to wg.
func goEach(wg *sync.WaitGroup, n int, f func(int)) {
	for i := range n - 1 {
		wg.Go(func() { f(i) })
	}
	if n > 0 {
		f(n - 1)
	}
}

// Limits on what one domain can make the checker contact.
const (
	maxMXHosts      = 16
	maxAddrsPerHost = 16
)

// mxTarget is one MX record, in preference order.
type mxTarget struct {
	host     string
	pref     uint16
	implicit bool // RFC 5321 §5.1 implicit MX: the domain itself
	literal  bool // the target looks like an IP address
}

// lookupMX follows RFC 5321 §5.1 and RFC 7505 on the answer to the MX
// query (ans, err). It returns the hosts to check (none when the domain
// cannot be listed), whether the MX answer was DNSSEC-authenticated, and
// the findings.
func (v *Validator) lookupMX(ctx context.Context, domain string, ans *answer, err error) ([]mxTarget, bool, []Finding) {
	if err != nil {
		return nil, false, []Finding{finding(CodeDNSLookupFailed, "", "", "Looking up the MX records of %s failed: %v.", domain, errText(err))}
	}
	if ans.nxdomain {
		return nil, ans.ad, []Finding{finding(CodeDNSNXDomain, "", "", "%s does not exist in DNS (NXDOMAIN).", domain)}
	}
	var mxs []mxTarget
	seen := map[string]bool{}
	for _, rr := range ans.rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		host := strings.ToLower(strings.TrimSuffix(mx.Mx, "."))
		if host == "" {
			// RFC 7505 §3: a single MX with target "." (the null MX) means
			// the domain accepts no mail.
			return nil, ans.ad, []Finding{finding(CodeDNSNullMX, "", "", "%s publishes a null MX record (MX %d .).", domain, mx.Preference)}
		}
		if seen[host] {
			continue
		}
		seen[host] = true
		_, perr := netip.ParseAddr(strings.Trim(host, "[]"))
		mxs = append(mxs, mxTarget{host: host, pref: mx.Preference, literal: perr == nil})
	}
	var fs []Finding
	if len(mxs) == 0 {
		// RFC 5321 §5.1: without MX records the domain itself is the
		// implicit MX, if it has an address.
		addrs, _, err := v.lookupAddrs(ctx, domain)
		if err != nil {
			return nil, false, []Finding{finding(CodeDNSLookupFailed, "", "", "%s has no MX records and looking up its own addresses failed: %v.", domain, errText(err))}
		}
		if len(addrs) == 0 {
			return nil, ans.ad, []Finding{finding(CodeDNSNoMX, "", "", "%s has no MX records and no A or AAAA records: it cannot receive mail.", domain)}
		}
		fs = append(fs, finding(CodeDNSImplicitMX, domain, "", "%s has no MX records; senders use its own address records (implicit MX).", domain))
		return []mxTarget{{host: domain, implicit: true}}, ans.ad, fs
	}
	slices.SortStableFunc(mxs, func(a, b mxTarget) int {
		return cmp.Or(cmp.Compare(a.pref, b.pref), strings.Compare(a.host, b.host))
	})
	if len(mxs) > maxMXHosts {
		// A submitted domain must not make the checker dial without
		// bound; hosts it does not check cannot be vouched for.
		fs = append(fs, finding(CodeDNSTooManyRecords, "", "", "%s has %d MX hosts; only the first %d were checked.", domain, len(mxs), maxMXHosts))
		mxs = mxs[:maxMXHosts]
	}
	return mxs, ans.ad, fs
}

// hostInfo is what DNS says about one MX host.
type hostInfo struct {
	addrs    []netip.Addr
	secure   bool // A and AAAA answers were DNSSEC-authenticated
	findings []Finding
	tlsa     *tlsaSet // the host's TLSA records, when authenticated
	tlsaErr  error
}

// resolveHost looks up A and AAAA of host (and, when those are
// authenticated, its TLSA records for DANE). When the domain's MX answer
// was authenticated (likelyTLSA), the TLSA query goes out with the
// address queries.
func (v *Validator) resolveHost(ctx context.Context, host string, literal, likelyTLSA bool) *hostInfo {
	info := &hostInfo{}
	if literal {
		info.findings = append(info.findings, finding(CodeDNSMXIPLiteral, host, "", "The MX target %s is an IP address, not a host name.", host))
	}
	qs := []question{{host, dns.TypeA}, {host, dns.TypeAAAA}}
	if likelyTLSA && !literal {
		qs = append(qs, question{tlsaName(host), dns.TypeTLSA})
	}
	ans, errs := v.dns.queryAll(ctx, qs...)
	addrs, cname, secure, err := addresses(ans, errs)
	if cname {
		info.findings = append(info.findings, finding(CodeDNSMXCNAME, host, "", "The MX host %s is an alias (CNAME).", host))
	}
	if err != nil {
		// A failed A or AAAA look-up hides addresses that senders may
		// use: the host cannot be judged.
		info.findings = append(info.findings, finding(CodeDNSLookupFailed, host, "", "Looking up the addresses of %s failed: %v.", host, errText(err)))
		return info
	}
	if len(addrs) > maxAddrsPerHost {
		info.findings = append(info.findings, finding(CodeDNSTooManyRecords, host, "", "%s has %d addresses; only the first %d were checked.", host, len(addrs), maxAddrsPerHost))
		addrs = addrs[:maxAddrsPerHost]
	}
	info.addrs = addrs
	if len(info.addrs) == 0 {
		info.findings = append(info.findings, finding(CodeDNSNoAddress, host, "", "The MX host %s has no A or AAAA records.", host))
		return info
	}
	info.secure = secure
	switch {
	case !info.secure:
	case len(ans) > 2:
		info.tlsa, info.tlsaErr = tlsaRecords(ans[2], errs[2])
	default:
		info.tlsa, info.tlsaErr = v.lookupTLSA(ctx, host)
	}
	return info
}

// cache runs f once per key and shares the result; it keeps at most about
// 2*max entries, dropping the oldest generation when full.
type cache[T any] struct {
	mu       sync.Mutex
	max      int
	cur, old map[string]*call[T]
}

type call[T any] struct {
	done   chan struct{}
	val    T
	failed bool // computed under a cancelled context: not reusable
}

func (c *cache[T]) do(ctx context.Context, key string, f func() T) T {
	for {
		c.mu.Lock()
		if c.cur == nil {
			c.cur = map[string]*call[T]{}
		}
		e, ok := c.cur[key]
		if !ok {
			if e, ok = c.old[key]; ok {
				c.cur[key] = e
			}
		}
		if ok {
			c.mu.Unlock()
			<-e.done
			if !e.failed || ctx.Err() != nil {
				return e.val
			}
			continue // the leader was cancelled; we are not: compute again
		}
		if len(c.cur) >= c.max {
			c.old, c.cur = c.cur, map[string]*call[T]{}
		}
		e = &call[T]{done: make(chan struct{})}
		c.cur[key] = e
		c.mu.Unlock()

		e.val = f()
		if ctx.Err() != nil {
			e.failed = true
			c.mu.Lock()
			if c.cur[key] == e {
				delete(c.cur, key)
			}
			if c.old[key] == e {
				delete(c.old, key)
			}
			c.mu.Unlock()
		}
		close(e.done)
		return e.val
	}
}

// lookupAddrs returns the A and AAAA addresses of host, sorted, and
// whether both answers were DNSSEC-authenticated.
func (v *Validator) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	addrs, _, secure, err := v.lookupAddrsCNAME(ctx, host)
	return addrs, secure, err
}

func (v *Validator) lookupAddrsCNAME(ctx context.Context, host string) (addrs []netip.Addr, cname, secure bool, err error) {
	return addresses(v.dns.queryAll(ctx, question{host, dns.TypeA}, question{host, dns.TypeAAAA}))
}

// addresses reads the answers to the A and AAAA queries (the first two of
// answers): the addresses, sorted, whether a CNAME was followed and whether
// both answers were DNSSEC-authenticated.
func addresses(answers []*answer, errs []error) (addrs []netip.Addr, cname, secure bool, err error) {
	if err := cmp.Or(errs[0], errs[1]); err != nil {
		return nil, false, false, err
	}
	a, aaaa := answers[0], answers[1]
	for _, ans := range []*answer{a, aaaa} {
		for _, rr := range ans.rrs {
			switch rr := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					addrs = append(addrs, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA.To16()); ok {
					addrs = append(addrs, ip)
				}
			case *dns.CNAME:
				cname = true
			}
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return slices.Compact(addrs), cname, a.ad && aaaa.ad, nil
}
