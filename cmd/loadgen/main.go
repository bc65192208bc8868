// Command loadgen measures the speed of the service's web routes on
// loopback (see BENCHMARKS.md, scripts/bench-web.sh). It is a development
// tool, not part of the service.
//
//	loadgen seed -data-dir DIR -domains 100000
//	    fills a SQLite store with listed domains, each with its check
//	    history and decisions, as a long-running service would have.
//	loadgen run -c 32 -d 10s -url 'http://127.0.0.1:8080/domains/d{i}.bench.test' -range 100000
//	    requests the URL from 32 clients for 10 s and reports req/s and
//	    latency percentiles; {i} is a random number below -range.
//	loadgen run -from 127.0.0.3 -rate 1000 -url URL -flood URL2 -flood-from 127.0.0.2
//	    the same, while other clients, from another loopback address,
//	    request URL2 as fast as they can.
//
// The exit status is 1 when a figure misses -min-rps or -max-p99, 2 on a
// usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/starttls-preload/starttls-preload/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "seed":
		err = seedCmd(ctx, os.Args[2:])
	case "run":
		err = runCmd(ctx, os.Args[2:])
	default:
		usage()
	}
	var miss missed
	switch {
	case errors.As(err, &miss):
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: loadgen seed -data-dir DIR [-domains N] | loadgen run -url URL [flags]; -h for flags")
	os.Exit(2)
}

// missed is a figure below its target.
type missed string

func (m missed) Error() string { return string(m) }

type headers []string

func (h *headers) String() string     { return strings.Join(*h, ", ") }
func (h *headers) Set(s string) error { *h = append(*h, s); return nil }

type urls []string

func (u *urls) String() string     { return strings.Join(*u, " ") }
func (u *urls) Set(s string) error { *u = append(*u, s); return nil }

func runCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var targets urls
	var hdrs headers
	fs.Var(&targets, "url", "URL to request (repeat: each is measured in turn); {i} is replaced by a random number below -range")
	rng := fs.Int("range", 0, "numbers drawn for {i}")
	c := fs.Int("c", 32, "concurrent clients")
	d := fs.Duration("d", 10*time.Second, "duration of each measurement")
	rate := fs.Float64("rate", 0, "requests per second to send (open loop); 0: as fast as answered")
	from := fs.String("from", "", "local IP of the measured clients (e.g. 127.0.0.3)")
	cond := fs.Bool("conditional", false, "fetch once, then send If-None-Match with the ETag")
	fs.Var(&hdrs, "H", "request header 'Name: value' (repeatable)")
	flood := fs.String("flood", "", "URL to flood while measuring")
	floodFrom := fs.String("flood-from", "127.0.0.2", "local IP of the flooding clients")
	floodC := fs.Int("flood-c", 16, "flooding clients")
	floodRange := fs.Int("flood-range", 0, "numbers drawn for {i} in the flood URL")
	floodRate := fs.Float64("flood-rate", 0, "flood requests per second (open loop); 0: as fast as answered")
	minRPS := fs.Float64("min-rps", 0, "exit 1 if a measured load answers fewer requests per second")
	maxP99 := fs.Duration("max-p99", 0, "exit 1 if a measured load's p99 latency is higher")
	asJSON := fs.Bool("json", false, "print one JSON object per result")
	fs.Parse(args)
	if len(targets) == 0 || fs.NArg() > 0 {
		return fmt.Errorf("run needs -url and no arguments")
	}
	h := http.Header{}
	for _, kv := range hdrs {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			return fmt.Errorf("-H %q: want 'Name: value'", kv)
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	var misses []string
	for _, u := range targets {
		loads := []loadgen.Load{{
			Name: "measured", URL: u, Range: *rng, Header: h, Conditional: *cond,
			Concurrency: *c, Duration: *d, Rate: *rate, LocalAddr: *from,
		}}
		if *flood != "" {
			loads = append(loads, loadgen.Load{Name: "flood", URL: *flood, Range: *floodRange,
				Concurrency: *floodC, Duration: *d, Rate: *floodRate, LocalAddr: *floodFrom})
		}
		cpu0 := processCPU()
		res, err := loadgen.RunAll(ctx, loads...)
		if err != nil {
			return err
		}
		total := 0
		for _, r := range res {
			total += r.Requests + r.Errors
		}
		for _, r := range res {
			if *asJSON {
				b, _ := json.Marshal(r)
				fmt.Println(string(b))
			} else {
				fmt.Printf("%s\n    %s\n", r.URL, r)
			}
		}
		if !*asJSON && total > 0 {
			// On the server's machine, this is CPU the server did not get.
			fmt.Printf("    (load generator: %.0f µs of CPU per request)\n", float64(processCPU()-cpu0)/float64(total)/1e3)
		}
		m := res[0]
		if *minRPS > 0 && m.RPS < *minRPS {
			misses = append(misses, fmt.Sprintf("%s: %.0f req/s < %.0f", u, m.RPS, *minRPS))
		}
		if *maxP99 > 0 && m.P99 > *maxP99 {
			misses = append(misses, fmt.Sprintf("%s: p99 %s > %s", u, m.P99, *maxP99))
		}
		if m.Errors > 0 {
			misses = append(misses, fmt.Sprintf("%s: %d requests failed (%s)", u, m.Errors, m.FirstError))
		}
	}
	if len(misses) > 0 {
		return missed("missed: " + strings.Join(misses, "; "))
	}
	return nil
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
