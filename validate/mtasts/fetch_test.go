package mtasts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

const goodPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.test\r\nmax_age: 86400\r\n"

// testPKI returns a root pool and a server certificate for names, signed by
// that root.
func testPKI(t *testing.T, names ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Test Root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// newPolicyServer starts an HTTPS server on 127.0.0.1 with cert and returns
// a client whose dialer sends every host name to it.
func newPolicyServer(t *testing.T, roots *x509.CertPool, cert tls.Certificate, h http.Handler) *http.Client {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}}
}

func TestFetch(t *testing.T) {
	roots, cert := testPKI(t, "mta-sts.example.test")
	// For the TLS failure cases: the handshake fails before any request.
	mux := http.NotFoundHandler()
	client := newPolicyServer(t, roots, cert, mux)

	tests := []struct {
		name    string
		ctype   string
		status  int
		body    string
		wantErr error
	}{
		{"good", "text/plain", 200, goodPolicy, nil},
		{"good with charset", "text/plain; charset=utf-8", 200, goodPolicy, nil},
		{"redirect", "text/plain", 301, goodPolicy, ErrRedirect},
		{"temporary redirect", "text/plain", 307, goodPolicy, ErrRedirect},
		{"not found", "text/plain", 404, "", ErrHTTPStatus},
		{"server error", "text/plain", 500, "", ErrHTTPStatus},
		{"html", "text/html", 200, goodPolicy, ErrContentType},
		{"bad content type", "text/plain; =", 200, goodPolicy, ErrContentType},
		{"too large", "text/plain", 200, goodPolicy + strings.Repeat("x", MaxPolicySize), ErrTooLarge},
		{"bad syntax", "text/plain", 200, "version: STSv1\n", ErrPolicySyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
				if r.Host != "mta-sts.example.test" {
					t.Errorf("Host = %q", r.Host)
				}
				w.Header().Set("Content-Type", tt.ctype)
				if tt.status >= 300 && tt.status < 400 {
					w.Header().Set("Location", "https://mta-sts.example.test/elsewhere")
				}
				w.WriteHeader(tt.status)
				w.Write([]byte(tt.body))
			})
			mux.Handle("/elsewhere", http.NotFoundHandler())
			client := newPolicyServer(t, roots, cert, mux)
			p, err := Fetch(context.Background(), client, "Example.Test.")
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %+v, %v; want %v", p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mode != ModeEnforce || !p.Match("mx1.example.test") {
				t.Fatalf("got %+v", p)
			}
		})
	}

	t.Run("redirect not followed even if the client follows", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.Handle("/.well-known/mta-sts.txt", http.RedirectHandler("/elsewhere", http.StatusFound))
		mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
			t.Error("redirect followed")
		})
		c := newPolicyServer(t, roots, cert, mux)
		if _, err := Fetch(context.Background(), c, "example.test"); !errors.Is(err, ErrRedirect) {
			t.Fatalf("got %v; want %v", err, ErrRedirect)
		}
		if c.CheckRedirect != nil {
			t.Fatal("caller's client modified")
		}
	})

	t.Run("wrong name", func(t *testing.T) {
		if _, err := Fetch(context.Background(), client, "other.test"); !errors.Is(err, ErrCertificate) {
			t.Fatalf("got %v; want %v", err, ErrCertificate)
		}
	})

	t.Run("untrusted", func(t *testing.T) {
		otherRoots, _ := testPKI(t, "unused.test")
		c := newPolicyServer(t, otherRoots, cert, mux)
		if _, err := Fetch(context.Background(), c, "example.test"); !errors.Is(err, ErrCertificate) {
			t.Fatalf("got %v; want %v", err, ErrCertificate)
		}
	})

	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		var d net.Dialer
		c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}}}
		_, err = Fetch(context.Background(), c, "example.test")
		if !errors.Is(err, ErrFetch) || errors.Is(err, ErrCertificate) {
			t.Fatalf("got %v; want %v", err, ErrFetch)
		}
	})

	t.Run("deadline from context", func(t *testing.T) {
		arrived := make(chan struct{})
		release := make(chan struct{})
		defer close(release)
		mux := http.NewServeMux()
		mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		c := newPolicyServer(t, roots, cert, mux)
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-arrived; cancel() }()
		_, err := Fetch(ctx, c, "example.test")
		if !errors.Is(err, ErrFetch) || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v; want %v wrapping context.Canceled", err, ErrFetch)
		}
	})
}

func TestFetchSizeLimit(t *testing.T) {
	roots, cert := testPKI(t, "mta-sts.example.test")
	head := "version: STSv1\nmode: none\nmax_age: 1\npad: "
	exact := head + strings.Repeat("a", MaxPolicySize-len(head)-1) + "\n"
	for _, tt := range []struct {
		body    string
		wantErr error
	}{
		{exact, nil},
		{exact + "b", ErrTooLarge},
	} {
		mux := http.NewServeMux()
		mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write([]byte(tt.body))
		})
		c := newPolicyServer(t, roots, cert, mux)
		_, err := Fetch(context.Background(), c, "example.test")
		if tt.wantErr == nil && err != nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("body of %d bytes: got %v; want %v", len(tt.body), err, tt.wantErr)
		}
	}
}
