package publish

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode"
)

// rawServer answers every connection on loopback with the bytes of
// respond(request line), then closes it.
func rawServer(t *testing.T, respond func(path string) string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				line, _ := r.ReadString('\n')
				for { // the rest of the request head
					l, err := r.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				f := strings.Fields(line)
				if len(f) < 2 {
					return
				}
				c.Write([]byte(respond(f[1])))
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/" + ListFile
}

// checkOperatorText fails when s could garble or flood an operator's
// terminal or mail: control characters, or more than a few hundred bytes of
// anything.
func checkOperatorText(t *testing.T, s string) {
	t.Helper()
	for _, r := range s {
		if unicode.IsControl(r) {
			t.Fatalf("control character %U in %q", r, truncate(s, 300))
		}
	}
	if len(s) > 1000 {
		t.Fatalf("message is %d bytes: %q…", len(s), s[:300])
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Server text reaches the operator's one-line error only cleaned and cut
// short.
func TestFetchServerTextIsCleaned(t *testing.T) {
	key := newKey(t)
	tests := []struct {
		name    string
		respond func(path string) string
	}{
		{"status line with ESC and BEL", func(string) string {
			return "HTTP/1.1 500 \x1b[2J\x1b[31mgone\x07\x07 \x9b31m\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		}},
		{"status line of 4 MB", func(string) string {
			return "HTTP/1.1 503 " + strings.Repeat("\x1bA", 2<<20) + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		}},
		{"status line of 40 kB", func(string) string {
			return "HTTP/1.1 503 " + strings.Repeat("busy\x07 ", 8<<10) + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		}},
		{"error body of 4 MB", func(string) string {
			body := strings.Repeat("\x1b]0;pwned\x07", 400<<10)
			return "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n" + body
		}},
		{"redirect to a long location", func(string) string {
			return "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/" + strings.Repeat("%1b%07x", 5000) + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, rawServer(t, tt.respond), key.Public())
			_, err := c.fetch(t)
			if !errors.Is(err, ErrDownload) {
				t.Fatalf("err = %v, want ErrDownload", truncate(errString(err), 300))
			}
			checkOperatorText(t, err.Error())
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestServerText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Not Found", "Not Found"},
		{"a\x1b[31mb\x07c", "a[31mbc"},
		{"tab\tand\r\nnewline", "tab and newline"},
		{"del\x7f c1\u009b end", "del c1 end"},
		{"bad \xff utf8", "bad \ufffd utf8"},
		{strings.Repeat("é", 300), strings.Repeat("é", maxServerText/2) + "…"},
	}
	for _, tt := range tests {
		if got := serverText(tt.in); got != tt.want {
			t.Errorf("serverText(%q) = %q, want %q", truncate(tt.in, 40), truncate(got, 40), truncate(tt.want, 40))
		}
	}
}

// An https:// URL is never followed to plain http://, whatever the server
// says; https to https is followed.
func TestFetchRedirectFromHTTPSToHTTPRefused(t *testing.T) {
	key := newKey(t)
	plain := newTestServer(t, key, testList(10, 1))
	var plainHits int
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainHits++
		plain.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(counting.Close)

	tests := []struct {
		name   string
		target func(r *http.Request) string
		want   error
	}{
		{"to http on loopback", func(r *http.Request) string { return counting.URL + r.URL.Path }, ErrDownload},
		{"to http, upper case scheme", func(r *http.Request) string {
			return "HTTP://" + strings.TrimPrefix(counting.URL, "http://") + r.URL.Path
		}, ErrDownload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redirector := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, tt.target(r), http.StatusFound)
			}))
			t.Cleanup(redirector.Close)
			c := newClient(t, redirector.URL+"/"+ListFile, key.Public())
			c.opts.Client = redirector.Client()
			plainHits = 0
			_, err := c.fetch(t)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), "plain http") {
				t.Fatalf("err = %v, want %v saying it refused plain http", err, tt.want)
			}
			if plainHits != 0 {
				t.Errorf("the plain http server was asked %d times", plainHits)
			}
		})
	}

	// https → https (same TLS server, another path) is followed.
	tlsList := httptest.NewUnstartedServer(nil)
	tlsList.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := strings.CutPrefix(r.URL.Path, "/old"); ok {
			http.Redirect(w, r, p, http.StatusMovedPermanently)
			return
		}
		plain.srv.Config.Handler.ServeHTTP(w, r)
	})
	tlsList.StartTLS()
	t.Cleanup(tlsList.Close)
	c := newClient(t, tlsList.URL+"/old/"+ListFile, key.Public())
	c.opts.Client = tlsList.Client()
	if res, err := c.fetch(t); err != nil || res.Serial != 10 {
		t.Fatalf("https to https: %+v, %v", res, err)
	}
}
