package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/internal/pgtest"
	"github.com/starttls-preload/starttls-preload/internal/testclock"
	"github.com/starttls-preload/starttls-preload/lifecycle"
	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/store"
)

// serveEnv sets the configuration a lab service needs: the lab's DNS
// server, CA and port, and a short admission period (one day, 4 checks).
func serveEnv(t *testing.T, l *checkLab) {
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_RESOLVER", l.dns.Addr())
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_CA_FILE", l.caFile)
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_ALLOW_PRIVATE", "true")
	t.Setenv("STARTTLS_PRELOAD_WEB_ALLOW_PRIVATE", "true") // visitors' checks of the lab
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_SMTP_PORT", l.port)
	t.Setenv("STARTTLS_PRELOAD_VALIDATE_TIMEOUT", "10s")
	t.Setenv("STARTTLS_PRELOAD_ADMISSION_MIN_DAYS", "1")
	t.Setenv("STARTTLS_PRELOAD_ADMISSION_MIN_CHECKS", "4")
	t.Setenv("STARTTLS_PRELOAD_ADMISSION_CHECK_INTERVAL", "6h")
	t.Setenv("STARTTLS_PRELOAD_ADMISSION_PROVIDER_RATE", "0")
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return b
}

// TestServeAdmitsIntoSignedList runs the service's parts on 127.0.0.1:0
// with a temporary data directory and the lab network: an operator adds a
// domain, rounds driven by a fake clock admit it, and the served list,
// signed with the key created on first run, carries it.
func TestServeAdmitsIntoSignedList(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testServeAdmits(t) })
	t.Run("postgres", func(t *testing.T) {
		t.Setenv("STARTTLS_PRELOAD_STORE_DRIVER", "postgres")
		t.Setenv("STARTTLS_PRELOAD_STORE_DSN", pgtest.DSN(t))
		testServeAdmits(t)
	})
}

func testServeAdmits(t *testing.T) {
	l := newCheckLab(t)
	dataDir := t.TempDir()
	serveEnv(t, l)

	c := testServeConfig(t, dataDir, "127.0.0.1:0")
	clock := testclock.New(time.Now().Add(time.Minute).UTC())
	ctx := context.Background()
	app := testServeApp(ctx, t, c, schedulerDeps{now: clock.Now})
	if _, err := app.builder.Publish(ctx, false); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(app.Handler())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	base := "http://" + ln.Addr().String()

	if got := strings.TrimSpace(string(httpGet(t, base+"/api/v1/domains"))); got != "[]" {
		t.Errorf("empty status = %s, want []", got)
	}
	out, stderr, code := execute(t, "domains", "add", "good.test", "--mx", "mx.good.test", "--contact", "postmaster@good.test",
		"--skip-ownership", "--data-dir", dataDir)
	if code != exitOK {
		t.Fatalf("domains add: %d %s", code, stderr)
	}
	if !strings.Contains(out, "validating") {
		t.Errorf("domains add said %q", out)
	}
	if _, _, code := execute(t, "domains", "add", "bad.test", "--mx", "mx.bad.test", "--skip-ownership", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("domains add bad.test: %d", code)
	}

	var list *listgen.List
	for i := 0; i < 8; i++ {
		if err := app.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		body := httpGet(t, base+"/policy-list.json")
		if list, err = listgen.Parse(body); err != nil {
			t.Fatal(err)
		}
		if _, ok := list.Resolve("good.test"); ok {
			break
		}
		clock.Add(6 * time.Hour)
	}
	p, ok := list.Resolve("good.test")
	if !ok || p.Mode != listgen.ModeTesting || strings.Join(p.MXs, " ") != "mx.good.test" {
		t.Fatalf("good.test in the served list: %+v %v", p, ok)
	}
	if _, ok := list.Resolve("bad.test"); ok {
		t.Error("bad.test (no STARTTLS) was admitted")
	}

	// The served list verifies with the served key, and with the key file
	// created under the data directory.
	body := httpGet(t, base+"/policy-list.json")
	sig := httpGet(t, base+"/policy-list.json.sig")
	pubs, err := listgen.ParsePublicKeys(httpGet(t, base+"/pubkey.pem"))
	if err != nil || len(pubs) != 1 {
		t.Fatalf("served pubkey.pem: %d keys, %v; want 1", len(pubs), err)
	}
	pub := pubs[0]
	if err := listgen.VerifyBlob(pub, body, sig); err != nil {
		t.Errorf("served list does not verify: %v", err)
	}
	if err := listgen.VerifySSH(pub, body, httpGet(t, base+"/policy-list.json.sshsig")); err != nil {
		t.Errorf("served SSH signature does not verify: %v", err)
	}
	key, created, err := admission.LoadOrCreateKey(filepath.Join(dataDir, "list-signing.key"), "")
	if err != nil || created {
		t.Fatalf("signing key under the data dir: created=%v %v", created, err)
	}
	if err := listgen.VerifyBlob(key.Public(), body, sig); err != nil {
		t.Errorf("list not signed by the data dir's key: %v", err)
	}

	// Status API, operator commands and metrics agree.
	var statuses []admission.Status
	if err := json.Unmarshal(httpGet(t, base+"/api/v1/domains"), &statuses); err != nil {
		t.Fatal(err)
	}
	if len(statuses) != 2 || statuses[1].Domain != "good.test" || statuses[1].State != admission.Testing {
		t.Errorf("statuses = %+v", statuses)
	}
	out, _, code = execute(t, "domains", "list", "--json", "--data-dir", dataDir)
	if code != exitOK {
		t.Fatalf("domains list: %d", code)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("domains list --json: %v\n%s", err, out)
	}
	for _, k := range []string{"domain", "state", "checks_passed", "checks_needed", "last_checked"} {
		if _, ok := rows[0][k]; !ok {
			t.Errorf("domains list --json: no %q in %v", k, rows[0])
		}
	}
	if rows[0]["domain"] != "bad.test" || rows[0]["state"] != "validating" || rows[0]["checks_needed"] != float64(4) {
		t.Errorf("bad.test row = %v", rows[0])
	}
	out, _, code = execute(t, "domains", "show", "good.test", "--data-dir", dataDir)
	if code != exitOK || !strings.Contains(out, admission.CodeAdmitted) || !strings.Contains(out, admission.CodeAddedByOperator) {
		t.Errorf("domains show: %d\n%s", code, out)
	}
	out, _, code = execute(t, "domains", "show", "bad.test", "--json", "--data-dir", dataDir)
	var detail admission.Detail
	if code != exitOK || json.Unmarshal([]byte(out), &detail) != nil || len(detail.Checks) == 0 || detail.Checks[0].Eligible {
		t.Errorf("domains show --json bad.test: %d\n%s", code, out)
	}
	if !strings.Contains(string(detail.Checks[0].Findings), "starttls") {
		t.Errorf("bad.test's latest check has no STARTTLS finding: %s", detail.Checks[0].Findings)
	}
	metrics := string(httpGet(t, base+"/metrics"))
	for _, want := range []string{`starttls_preload_checks_total{outcome="pass"}`, `starttls_preload_domains{state="testing"} 1`, "starttls_preload_check_duration_seconds_bucket", "starttls_preload_queue_depth 0"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Removal: the domain leaves the next list, which the service
	// publishes within a minute of an operator's change.
	if _, stderr, code := execute(t, "domains", "remove", "good.test", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("domains remove: %d %s", code, stderr)
	}
	clock.Add(time.Minute)
	if err := app.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	list, err = listgen.Parse(httpGet(t, base+"/policy-list.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := list.Resolve("good.test"); ok {
		t.Error("good.test still listed after its removal")
	}
}

func TestDomainsCommandErrors(t *testing.T) {
	dataDir := t.TempDir()
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"domains", "add", "example.test"}, exitUsage},
		{[]string{"domains", "add", "example.test", "--mx", "mx.*.test"}, exitUsage},
		{[]string{"domains", "add", "not a domain", "--mx", "mx.example.test"}, exitUsage},
		{[]string{"domains", "add", "example.test", "--mx", "mx.example.test", "--contact", "nobody"}, exitUsage},
		{[]string{"domains", "show", "absent.test"}, exitFindings},
		{[]string{"domains", "remove", "absent.test"}, exitFindings},
		{[]string{"domains", "list", "--state", "listed"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := execute(t, append(tt.args, "--data-dir", dataDir)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (%s)", code, tt.code, stderr)
			}
			if code != exitOK && (stderr == "" || strings.Contains(stderr, "\n")) {
				t.Errorf("stderr %q is not one line", stderr)
			}
		})
	}
	// Pending without --skip-ownership; add again declares the patterns again.
	if out, _, code := execute(t, "domains", "add", "example.test", "--mx", "mx1.example.test", "--data-dir", dataDir); code != exitOK || !strings.Contains(out, "pending") {
		t.Errorf("add: %d %q", code, out)
	}
	if out, _, code := execute(t, "domains", "add", "example.test", "--mx", "*.example.test", "--data-dir", dataDir); code != exitOK || !strings.Contains(out, "declared again") {
		t.Errorf("add again: %d %q", code, out)
	}
	out, _, _ := execute(t, "domains", "list", "--data-dir", dataDir)
	if !strings.Contains(out, "*.example.test") || !strings.Contains(out, "pending") {
		t.Errorf("list:\n%s", out)
	}
}

// TestWorkerOnce runs `worker --once` on a data directory: the due domain
// is checked and its check recorded, nothing is served.
func TestWorkerOnce(t *testing.T) {
	dataDir := labWithDomain(t)
	// An opted-out domain is never probed; opting in again lets it be.
	if _, _, code := execute(t, "domains", "add", "good.test", "--mx", "mx.good.test", "--skip-ownership", "--data-dir", dataDir); code != exitOK {
		t.Fatal("domains add good.test")
	}
	if out, _, code := execute(t, "domains", "opt-out", "good.test", "--reason", "asked", "--data-dir", dataDir); code != exitOK || !strings.Contains(out, "never probed") {
		t.Fatalf("opt-out: %d %s", code, out)
	}
	if _, stderr, code := execute(t, "worker", "--once", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("worker --once: %d %s", code, stderr)
	}
	out, _, code := execute(t, "domains", "list", "--json", "--data-dir", dataDir)
	var rows []admission.Status
	if code != exitOK || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 2 {
		t.Fatalf("domains list: %d %s", code, out)
	}
	if rows[0].Domain != "also-good.test" || rows[0].LastChecked == nil || rows[0].ChecksPassed != 1 {
		t.Errorf("after one worker round: %+v", rows[0])
	}
	if rows[1].Domain != "good.test" || rows[1].LastChecked != nil {
		t.Errorf("the opted-out domain was checked: %+v", rows[1])
	}
}

// TestServeShutsDown runs the serve command until its context ends: it
// publishes the first list, listens, and returns cleanly on the signal.
func TestServeShutsDown(t *testing.T) {
	dataDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	t.Chdir(t.TempDir())
	base, done := startListening(t, ctx, &serveStarted, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0")
	// The first list is published before the server listens.
	if _, err := listgen.Parse(httpGet(t, base+"/policy-list.json")); err != nil {
		t.Errorf("first list: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v", err)
	}
	fi, err := os.Stat(filepath.Join(dataDir, "list-signing.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key: %v %v", fi, err)
	}
}

// TestServePrunesHistory keeps admission.keep_history of checks: once a
// day, older checks are deleted and decisions kept.
func TestServePrunesHistory(t *testing.T) {
	l := newCheckLab(t)
	dataDir := t.TempDir()
	serveEnv(t, l)
	t.Setenv("STARTTLS_PRELOAD_ADMISSION_KEEP_HISTORY", "1h")
	t.Setenv("STARTTLS_PRELOAD_DATA_DIR", dataDir)
	if _, stderr, code := execute(t, "domains", "add", "good.test", "--mx", "mx.good.test", "--skip-ownership", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("domains add: %s", stderr)
	}
	c, err := loadConfig(newServeCmd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clock := testclock.New(time.Now().Add(time.Minute).UTC())
	app := testServeApp(ctx, t, c, schedulerDeps{now: clock.Now})
	for range 2 {
		if err := app.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		clock.Add(25 * time.Hour)
	}
	checks, err := app.store.Checks(ctx, "good.test", time.Time{}, 0)
	if err != nil || len(checks) != 1 {
		t.Errorf("checks kept: %d (%v), want the latest only", len(checks), err)
	}
	decs, err := app.store.Decisions(ctx, "good.test")
	if err != nil || len(decs) == 0 {
		t.Errorf("decisions: %v %v, want them kept", decs, err)
	}
}

// TestWorkerMetrics: with --metrics-listen the worker serves its metrics
// while it runs, and stops serving them when it exits.
func TestWorkerMetrics(t *testing.T) {
	dataDir := labWithDomain(t)
	rounds := make(chan struct{}, 100)
	workerRoundDone = func() { rounds <- struct{}{} }
	t.Cleanup(func() { workerRoundDone = nil })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base, done := startListening(t, ctx, &metricsStarted, "worker", "--data-dir", dataDir, "--metrics-listen", "127.0.0.1:0")
	<-rounds
	body := string(httpGet(t, base+"/metrics"))
	for _, want := range []string{"starttls_preload_rounds_total 1", `starttls_preload_checks_total{outcome="pass"} 1`} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker returned %v", err)
	}
	if resp, err := http.Get(base + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("metrics still served after the worker exited")
	}
}

// startListening runs the command line until ctx ends, and returns the
// base URL it listens on (told through the hook *started) and the channel
// its result comes on.
func startListening(t *testing.T, ctx context.Context, started *func(string), args ...string) (string, chan error) {
	t.Helper()
	addr := make(chan string, 1)
	*started = func(a string) { addr <- a }
	t.Cleanup(func() { *started = nil })
	root := newRootCmd()
	root.SetArgs(args)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	select {
	case a := <-addr:
		return "http://" + a, done
	case err := <-done:
		t.Fatalf("%s returned before listening: %v", args[0], err)
		return "", nil
	}
}

// labWithDomain sets up the lab's service configuration and returns a data
// directory whose store holds also-good.test, due for checks.
func labWithDomain(t *testing.T) string {
	t.Helper()
	dataDir := t.TempDir()
	serveEnv(t, newCheckLab(t))
	if _, stderr, code := execute(t, "domains", "add", "also-good.test", "--mx", "mx.good.test", "--skip-ownership", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("domains add: %s", stderr)
	}
	return dataDir
}

// TestServeKeepsCheckInterval: with admission.check_interval 1s, serve's
// loop checks a validating domain about once a second of (fake) time, not
// once a minute: it sleeps until the next check falls due.
func TestServeKeepsCheckInterval(t *testing.T) {
	l := newCheckLab(t)
	dataDir := t.TempDir()
	serveEnv(t, l)
	t.Setenv("STARTTLS_PRELOAD_ADMISSION_CHECK_INTERVAL", "1s")
	t.Setenv("STARTTLS_PRELOAD_DATA_DIR", dataDir)
	t.Chdir(t.TempDir())
	if _, stderr, code := execute(t, "domains", "add", "good.test", "--mx", "mx.good.test", "--skip-ownership", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("domains add: %s", stderr)
	}
	c, err := loadConfig(newServeCmd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now().Add(time.Minute).UTC()
	clock := testclock.New(start)
	const span = 30 * time.Second
	var longest time.Duration
	sleep := func(ctx context.Context, d time.Duration) error {
		longest = max(longest, d)
		clock.Add(d)
		if clock.Now().Sub(start) >= span {
			cancel()
		}
		return ctx.Err()
	}
	app := testServeApp(ctx, t, c, schedulerDeps{now: clock.Now, sleep: sleep})
	if err := app.Run(ctx); err != nil {
		t.Fatal(err)
	}
	checks, err := app.store.Checks(context.Background(), "good.test", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// One check a second, give or take the scheduler's 10 % jitter.
	if n := len(checks); n < 26 || n > 35 {
		t.Errorf("%d checks in %v of check_interval 1s, want about 30", n, span)
	}
	if longest > 1100*time.Millisecond {
		t.Errorf("the loop slept %v at once, longer than the check interval", longest)
	}
}

// TestServeRetriesDNSProofs: a domain submitted without a click is proven
// by its TXT record once the owner publishes it: serve's loop looks the
// open proofs up again every few minutes of (fake) time.
func TestServeRetriesDNSProofs(t *testing.T) {
	l := newCheckLab(t)
	dataDir := t.TempDir()
	serveEnv(t, l)
	t.Setenv("STARTTLS_PRELOAD_DATA_DIR", dataDir)
	t.Chdir(t.TempDir())
	c, err := loadConfig(newServeCmd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	clock := testclock.New(time.Now().UTC())
	app := testServeApp(ctx, t, c, schedulerDeps{now: clock.Now})
	lc := &lifecycle.Lifecycle{Store: app.store, Now: clock.Now}
	proof, err := lc.Submit(ctx, lifecycle.Request{Domain: "good.test", Contact: "postmaster@good.test", MXPatterns: []string{"mx.good.test"}, Source: "web"})
	if err != nil {
		t.Fatal(err)
	}
	state := func() store.State {
		t.Helper()
		d, err := app.store.GetDomain(ctx, "good.test")
		if err != nil {
			t.Fatal(err)
		}
		return d.State
	}
	if err := app.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != store.StatePending {
		t.Fatalf("state without the record: %s, want pending", s)
	}
	l.dns.Add(fmt.Sprintf("%s. 300 IN TXT %q", proof.DNSName, proof.DNSValue))
	clock.Add(time.Minute)
	if err := app.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != store.StatePending {
		t.Fatalf("state a minute after the record: %s, want pending until the next retry", s)
	}
	clock.Add(dnsRetryEvery)
	if err := app.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != store.StateValidating {
		t.Errorf("state after the retry: %s, want validating", s)
	}
}

// testServeConfig is serve's configuration as
// `serve --data-dir dataDir --listen listen` loads it from an empty
// working directory, with the test's environment.
func testServeConfig(t *testing.T, dataDir, listen string) *Config {
	t.Helper()
	cmd := newServeCmd()
	if err := cmd.ParseFlags([]string{"--data-dir", dataDir, "--listen", listen}); err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir())
	c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir", "listen": "listen"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testServeApp is serve's application over c, closed when the test ends.
func testServeApp(ctx context.Context, t *testing.T, c *Config, deps schedulerDeps) *serveApp {
	t.Helper()
	app, err := newServeApp(ctx, c, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Close() })
	return app
}
