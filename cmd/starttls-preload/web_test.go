package main

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/store"
)

func TestBaseURLFromListen(t *testing.T) {
	for listen, want := range map[string]string{
		"127.0.0.1:8080": "http://127.0.0.1:8080",
		":8080":          "http://localhost:8080",
		"0.0.0.0:80":     "http://localhost:80",
		"[::]:8080":      "http://localhost:8080",
		"[::1]:8080":     "http://[::1]:8080",
		"lists.test:80":  "http://lists.test:80",
	} {
		if got := baseURLFromListen(listen); got != want {
			t.Errorf("%s: %s, want %s", listen, got, want)
		}
	}
}

// serve mounts the web door beside the list and the status API: the home
// page names this instance's URL (web.base_url) and key fingerprint, the
// list files and admission's paged status keep answering, and the door's
// own routes answer.
func TestServeMountsWebDoor(t *testing.T) {
	t.Setenv("STARTTLS_PRELOAD_WEB_BASE_URL", "https://lists.example.org")
	t.Setenv("STARTTLS_PRELOAD_WEB_TRUSTED_PROXIES", "10.0.0.0/8,192.0.2.1")
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	c := testServeConfig(t, t.TempDir(), "127.0.0.1:0")
	if c.Web.BaseURL != "https://lists.example.org" || len(c.Web.TrustedProxies) != 2 || !c.List.AllowTestTLD {
		t.Fatalf("web config = %+v", c.Web)
	}
	ctx := context.Background()
	app := testServeApp(ctx, t, c, schedulerDeps{})
	if _, err := app.builder.Publish(ctx, true); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	code, home := get("/")
	// The page shows the fingerprint as html/template escapes text ("+" is "&#43;").
	var fpHTML strings.Builder
	if err := template.Must(template.New("").Parse("{{.}}")).Execute(&fpHTML, listgen.Fingerprint(app.builder.Signer.Public())); err != nil {
		t.Fatal(err)
	}
	fp := fpHTML.String()
	if code != 200 || !strings.Contains(home, `id="check-form"`) || !strings.Contains(home, "https://lists.example.org/policy-list.json") || !strings.Contains(home, fp) {
		t.Errorf("home: %d %s", code, home)
	}
	if code, body := get("/policy-list.json"); code != 200 || !strings.Contains(body, `"serial"`) {
		t.Errorf("list: %d %s", code, body)
	}
	if code, body := get("/api/v1/domains"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("status API: %d %s", code, body)
	}
	if code, body := get("/api/v1/domains?name=x.test"); code != 200 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("batch: %d %s", code, body)
	}
	if code, body := get("/check?domain=192.0.2.1"); code != 400 || !strings.Contains(body, "domain.ip_literal") {
		t.Errorf("check: %d %s", code, body)
	}
	if code, body := get("/list"); code != 200 || !strings.Contains(body, `id="list-meta"`) {
		t.Errorf("list page: %d %s", code, body)
	}

	t.Setenv("STARTTLS_PRELOAD_WEB_TRUSTED_PROXIES", "10.0.0.0/33")
	c = testServeConfig(t, c.DataDir, "127.0.0.1:0")
	_, err := newServeApp(ctx, c, schedulerDeps{})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage || !strings.Contains(err.Error(), "web.trusted_proxies") {
		t.Errorf("a bad proxy prefix: %v", err)
	}
}

// The home page's set-up for MTA operators works as pasted: its commands'
// flags are the fetch command's, and its fetch.yaml (paths moved into a
// temporary directory, no postmap) installs this instance's list with the
// key downloaded where the page says.
func TestSetupInstructionsWork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	t.Setenv("STARTTLS_PRELOAD_WEB_BASE_URL", base)
	c := testServeConfig(t, t.TempDir(), ln.Addr().String())
	ctx := context.Background()
	app := testServeApp(ctx, t, c, schedulerDeps{})
	if _, err := app.builder.Publish(ctx, true); err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(app.Handler())
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	var setup struct {
		ListURL      string   `json:"list_url"`
		PubKeyURL    string   `json:"pubkey_url"`
		Fingerprints []string `json:"fingerprints"`
		FetchYAML    string   `json:"fetch_yaml"`
		FetchCommand string   `json:"fetch_command"`
		Cron         string   `json:"cron"`
	}
	if err := json.Unmarshal(httpGet(t, base+"/api/v1/setup"), &setup); err != nil {
		t.Fatal(err)
	}
	if setup.ListURL != base+"/policy-list.json" || len(setup.Fingerprints) != 1 || setup.Fingerprints[0] != listgen.Fingerprint(app.builder.Signer.Public()) {
		t.Fatalf("setup = %+v", setup)
	}
	// Every command line shown parses with the real flags.
	lines := []string{strings.ReplaceAll(setup.FetchCommand, "\\\n", " ")}
	lines = append(lines, setup.Cron[strings.Index(setup.Cron, "root")+len("root"):])
	for _, block := range lines {
		for _, line := range strings.Split(block, "\n") {
			line = strings.TrimSpace(strings.ReplaceAll(line, "'postfix reload'", "postfix-reload"))
			if !strings.HasPrefix(line, "starttls-preload ") {
				continue
			}
			args := strings.Fields(line)[1:]
			sub, rest, err := newRootCmd().Find(args)
			if err != nil || sub.Name() != "fetch" {
				t.Fatalf("%q: %v", line, err)
			}
			if err := sub.ParseFlags(rest); err != nil {
				t.Errorf("%q: %v", line, err)
			}
		}
	}
	// The configuration installs the list with the downloaded key.
	dir := t.TempDir()
	pub := filepath.Join(dir, "pubkey.pem")
	if err := os.WriteFile(pub, httpGet(t, setup.PubKeyURL), 0o644); err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer(
		"/etc/starttls-preload/pubkey.pem", pub,
		"/var/lib/starttls-preload", filepath.Join(dir, "state"),
		"/etc/postfix/starttls-policy", filepath.Join(dir, "starttls-policy"),
		"postmap: hash", "postmap: \"\"",
		"reload: postfix reload", "reload: \"true\"",
	).Replace(setup.FetchYAML)
	if !strings.Contains(yaml, "url: "+setup.ListURL) {
		t.Fatalf("fetch.yaml:\n%s", yaml)
	}
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "fetch.yaml")
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := execute(t, "fetch", "--config", conf); code != exitOK {
		t.Fatalf("fetch: %d %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "starttls-policy")); err != nil {
		t.Errorf("no policy installed: %v", err)
	}
}

// TestWebChecksKeepPrivateGuard: validate.allow_private lets the service's
// rounds reach a lab's loopback MX hosts, but a visitor's check through the
// web door still refuses private addresses (a visitor cannot make the
// service probe a private network) unless web.allow_private says so too.
func TestWebChecksKeepPrivateGuard(t *testing.T) {
	for _, tt := range []struct {
		webAllow string
		want     string
	}{
		{"false", `"mx.private_address"`},
		{"true", `"eligible":true`},
	} {
		t.Run("web.allow_private="+tt.webAllow, func(t *testing.T) {
			l := newCheckLab(t)
			serveEnv(t, l)
			t.Setenv("STARTTLS_PRELOAD_WEB_ALLOW_PRIVATE", tt.webAllow)
			cmd := newServeCmd()
			if err := cmd.ParseFlags([]string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"}); err != nil {
				t.Fatal(err)
			}
			t.Chdir(t.TempDir())
			c, err := loadConfig(cmd, map[string]string{"data_dir": "data-dir", "listen": "listen"})
			if err != nil {
				t.Fatal(err)
			}
			app, err := newServeApp(t.Context(), c, schedulerDeps{})
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close()
			rec := httptest.NewRecorder()
			app.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/check?domain=good.test", nil))
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), tt.want) {
				t.Errorf("check: %d, want %s in %s", rec.Code, tt.want, rec.Body.String())
			}
		})
	}
}

// TestWebFormsSurviveRestart: the forms' CSRF tokens are signed with the
// secret of web.secret_file, created on first run (mode 0600), so a form
// loaded before a restart posts after it; a serve with another secret
// refuses it.
func TestWebFormsSurviveRestart(t *testing.T) {
	t.Setenv("STARTTLS_PRELOAD_LIST_ALLOW_TEST_TLD", "true")
	ctx := context.Background()
	dataDir := t.TempDir()
	c := testServeConfig(t, dataDir, "127.0.0.1:0")
	first, err := newServeApp(ctx, c, schedulerDeps{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.store.AddDomain(ctx, store.Domain{Name: "form.test", State: store.StateValidating, NextCheck: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	first.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/domains/form.test", nil))
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(rec.Body.String())
	cookies := rec.Result().Cookies()
	if rec.Code != 200 || m == nil || len(cookies) != 1 {
		t.Fatalf("status page: %d, token %v, cookies %v", rec.Code, m, cookies)
	}
	first.Close()
	if fi, err := os.Stat(filepath.Join(dataDir, "web-secret")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("web secret file: %v, %v", fi, err)
	}

	post := func(app *serveApp) int {
		req := httptest.NewRequest(http.MethodPost, "/domains/form.test/removal", strings.NewReader(url.Values{"csrf": {m[1]}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(cookies[0])
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	if code := post(testServeApp(ctx, t, c, schedulerDeps{})); code == http.StatusForbidden || code >= 500 {
		t.Errorf("the form posted to the restarted serve: %d, want it accepted", code)
	}
	t.Setenv("STARTTLS_PRELOAD_WEB_SECRET_FILE", filepath.Join(t.TempDir(), "other-secret"))
	other := testServeConfig(t, dataDir, "127.0.0.1:0")
	if code := post(testServeApp(ctx, t, other, schedulerDeps{})); code != http.StatusForbidden {
		t.Errorf("the form posted to a serve with another secret: %d, want 403", code)
	}
}
