package listgen

import (
	"crypto"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// genList makes a deterministic list of n domains: 90% with their own
// policy (one to three MX patterns, a third of them wildcards; 40%
// enforced), 10% referring to one of four aliases.
func genList(n int) *List {
	r := rand.New(rand.NewPCG(1, 2))
	tlds := []string{"com", "net", "org", "de", "co.uk", "fr", "nl", "io"}
	l := &List{
		Version:       FormatVersion,
		Serial:        1000,
		Timestamp:     time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC),
		Expires:       time.Date(2026, 12, 7, 7, 0, 0, 0, time.UTC),
		Author:        "starttls-preload benchmark",
		Policies:      make(map[string]Policy, n),
		PolicyAliases: map[string]Policy{},
	}
	for i := range 4 {
		l.PolicyAliases["hoster"+strconv.Itoa(i)] = Policy{Mode: ModeTesting, MXs: []string{fmt.Sprintf("*.mx.hoster%d.net", i), fmt.Sprintf("mx%d.hoster%d.net", i, i)}}
	}
	for i := range n {
		d := strconv.FormatUint(r.Uint64()%1e12, 36) + "-" + strconv.Itoa(i) + "." + tlds[i%len(tlds)]
		if r.IntN(10) == 0 {
			l.Policies[d] = Policy{PolicyAlias: "hoster" + strconv.Itoa(r.IntN(4))}
			continue
		}
		p := Policy{Mode: ModeTesting}
		if r.IntN(10) < 4 {
			p.Mode = ModeEnforce
		}
		for j := range 1 + r.IntN(3) {
			if j == 2 {
				p.MXs = append(p.MXs, "*.mail."+d)
			} else {
				p.MXs = append(p.MXs, "mx"+strconv.Itoa(j+1)+"."+d)
			}
		}
		l.Policies[d] = p
	}
	return l
}

// resetPeakRSS collects garbage and resets the process's peak resident set
// (Linux: clear_refs 5), so that reportPeakRSS measures what follows.
func resetPeakRSS() {
	runtime.GC()
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU adds the CPU time per operation as a metric: on a shared
// machine it varies less than the elapsed time.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
}

// reportPeakRSS adds the process's peak resident set (VmHWM) since
// resetPeakRSS as a metric. Run one benchmark per process
// (scripts/bench-listgen.sh) for a figure that belongs to it.
func reportPeakRSS(b *testing.B) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err == nil {
				b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
			}
		}
	}
}

const benchDomains = 1_000_000

// BenchmarkPublish1M: canonical JSON, both signatures and both renderings
// of a 1,000,000-domain list (Publish).
func BenchmarkPublish1M(b *testing.B) {
	l := genList(benchDomains)
	key, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	resetPeakRSS()
	start := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		pub, err := Publish(l, key, RenderOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(len(pub.List))/1e6, "list-MB")
		b.ReportMetric(float64(len(pub.Postfix)+len(pub.Exim))/1e6, "snippets-MB")
	}
	b.StopTimer()
	reportCPU(b, start)
	reportPeakRSS(b)
}

// BenchmarkLintVerify1M: both signatures checked, then the strict parse
// and the lint of a 1,000,000-domain list.
func BenchmarkLintVerify1M(b *testing.B) {
	key, err := GenerateKey(AlgECDSAP256)
	if err != nil {
		b.Fatal(err)
	}
	data, err := Marshal(genList(benchDomains))
	if err != nil {
		b.Fatal(err)
	}
	sig, _ := SignBlob(key, data)
	sshsig, _ := SignSSH(key, data)
	resetPeakRSS()
	start := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		l, _, err := VerifyParse([]crypto.PublicKey{key.Public()}, data, sig, sshsig)
		if err != nil {
			b.Fatal(err)
		}
		if ps := Lint(l); len(ps) != 0 {
			b.Fatal(ps[0])
		}
	}
	b.StopTimer()
	reportCPU(b, start)
	reportPeakRSS(b)
}

// The steps one by one, to see where the time goes.
func BenchmarkSteps1M(b *testing.B) {
	l := genList(benchDomains)
	key, _ := GenerateKey(AlgECDSAP256)
	data, _ := Marshal(l)
	sig, _ := SignBlob(key, data)
	sshsig, _ := SignSSH(key, data)
	steps := []struct {
		name string
		f    func()
	}{
		{"Publish", func() { Publish(l, key, RenderOptions{}) }},
		{"Marshal", func() { Marshal(l) }},
		{"SignBlob", func() { SignBlob(key, data) }},
		{"SignSSH", func() { SignSSH(key, data) }},
		{"RenderPostfix", func() { RenderPostfix(l, RenderOptions{}) }},
		{"RenderExim", func() { RenderExim(l, RenderOptions{}) }},
		{"Render", func() { Render(l, RenderOptions{}) }},
		{"VerifyBlob", func() { VerifyBlob(key.Public(), data, sig) }},
		{"VerifySSH", func() { VerifySSH(key.Public(), data, sshsig) }},
		{"Parse", func() { Parse(data) }},
		{"Lint", func() { Lint(l) }},
	}
	for _, s := range steps {
		b.Run(s.name, func(b *testing.B) {
			start := cpuTime()
			for b.Loop() {
				s.f()
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkVerifyKeys1M: Verify of a 1,000,000-domain list with key
// sets of one, two and MaxKeys keys, the list signed by the last key of
// the set (a rotation): the data is hashed once for every ECDSA key tried,
// so only an Ed25519 FILE.sig alone costs a pass over the data per key.
func BenchmarkVerifyKeys1M(b *testing.B) {
	data, err := Marshal(genList(benchDomains))
	if err != nil {
		b.Fatal(err)
	}
	for _, alg := range []string{AlgECDSAP256, AlgEd25519} {
		var keys []crypto.PublicKey
		var signer crypto.Signer
		for range MaxKeys {
			k, err := GenerateKey(alg)
			if err != nil {
				b.Fatal(err)
			}
			keys, signer = append(keys, k.Public()), k
		}
		sig, _ := SignBlob(signer, data)
		sshsig, _ := SignSSH(signer, data)
		for _, n := range []int{1, 2, MaxKeys} {
			set := keys[MaxKeys-n:]
			for _, c := range []struct {
				name        string
				sig, sshsig []byte
			}{{"sig+sshsig", sig, sshsig}, {"sig", sig, nil}} {
				b.Run(fmt.Sprintf("%s/%d-keys/%s", alg, n, c.name), func(b *testing.B) {
					start := cpuTime()
					for b.Loop() {
						if _, err := Verify(set, data, c.sig, c.sshsig); err != nil {
							b.Fatal(err)
						}
					}
					reportCPU(b, start)
				})
			}
		}
	}
}

// TestWriteBenchList writes the benchmarks' 1,000,000-domain list to the
// file named by STARTTLS_PRELOAD_BENCH_LIST, for timing the commands
// (scripts/bench-listgen.sh). Without the variable it does nothing.
func TestWriteBenchList(t *testing.T) {
	path := os.Getenv("STARTTLS_PRELOAD_BENCH_LIST")
	if path == "" {
		return
	}
	b, err := Marshal(genList(benchDomains))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
