package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/lab"
)

// vmHWM returns the peak resident set size of process pid in KiB, or 0.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

var benchDomains = flag.Int("check.domains", 100000, "domains in BenchmarkCheckCommandBulk")

// BenchmarkCheckCommandBulk runs the built command on a --domains-file of
// -check.domains domains sharing 50 lab MX hosts, and reports its peak
// memory (max RSS of the process) and domains per second. Run with
// -benchtime=1x:
//
//	go test -run='^$' -bench=CheckCommandBulk -benchtime=1x ./cmd/starttls-preload
func BenchmarkCheckCommandBulk(b *testing.B) {
	const hosts = 50
	b.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true") // the lab's ".test" names
	pki := lab.NewPKI(b)
	d := lab.NewDNS(b, "127.0.0.1:0")
	ln, err := net.Listen("tcp", "127.0.1.1:0")
	if err != nil {
		b.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	for h := range hosts {
		name := fmt.Sprintf("mx%d.shared.test", h)
		c := pki.Leaf(name)
		ip := fmt.Sprintf("127.0.1.%d", h+1)
		lab.NewMX(b, net.JoinHostPort(ip, port), lab.ModeGood, &c)
		d.Add(name + ". 300 IN A " + ip)
	}
	dir := b.TempDir()
	file := filepath.Join(dir, "domains.txt")
	f, err := os.Create(file)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for i := range *benchDomains {
		d.Add(fmt.Sprintf("d%d.test. 300 IN MX 10 mx%d.shared.test.", i, i%hosts))
		fmt.Fprintf(w, "d%d.test\n", i)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	bin := filepath.Join(dir, "starttls-preload")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	ca := pki.WriteRootPEM(b)
	b.ResetTimer()
	for range b.N {
		out, err := os.Create(filepath.Join(dir, "out.jsonl"))
		if err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(bin, "check", "--json", "--domains-file", file, "--resolver", d.Addr(), "--ca-file", ca,
			"--allow-private", "--smtp-port", port, "--concurrency", "64")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = out, &stderr
		cmd.Dir = dir
		done := make(chan struct{})
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		// The peak resident set of the command itself: VmHWM of its
		// process, read until it exits (the rusage of a child counts the
		// parent's pages at fork time, which here hold the lab's data).
		peak := make(chan int64, 1)
		go func() {
			var hwm int64
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				if v := vmHWM(cmd.Process.Pid); v > hwm {
					hwm = v
				}
				select {
				case <-tick.C:
				case <-done:
					peak <- hwm
					return
				}
			}
		}()
		err = cmd.Wait()
		el := time.Since(start)
		close(done)
		if err != nil {
			b.Fatalf("check: %v: %s", err, stderr.String())
		}
		out.Close()
		kib := <-peak
		b.ReportMetric(float64(kib)/1024, "peakRSS-MiB")
		b.ReportMetric(float64(*benchDomains)/el.Seconds(), "domains/s")
		b.Logf("%s domains in %v, peak RSS %d MiB", strconv.Itoa(*benchDomains), el.Round(time.Millisecond), kib/1024)
	}
}
