package main

import (
	"bytes"
	"context"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
	"github.com/starttls-preload/starttls-preload/internal/lab"
	"github.com/starttls-preload/starttls-preload/store"
)

// TestWorkerMailsNotices runs one worker round with notify.smtp_relay set:
// a listed domain whose MX lost STARTTLS fails its check, and its contact
// gets a mail through the relay over verified STARTTLS.
func TestWorkerMailsNotices(t *testing.T) {
	l := newCheckLab(t)
	dataDir := t.TempDir()
	serveEnv(t, l)
	pki := lab.NewPKI(t)
	cert := pki.Leaf("127.0.0.6")
	relay := lab.NewMX(t, "127.0.0.6:0", lab.ModeGood, &cert)
	t.Setenv("STARTTLS_PRELOAD_DATA_DIR", dataDir)
	t.Setenv("STARTTLS_PRELOAD_NOTIFY_SMTP_RELAY", relay.Addr())
	t.Setenv("STARTTLS_PRELOAD_NOTIFY_FROM", "STARTTLS preload <noreply@preload.test>")
	t.Setenv("STARTTLS_PRELOAD_NOTIFY_CA_FILE", pki.WriteRootPEM(t))

	c, err := loadConfig(newWorkerCmd(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Notify.SMTPRelay != relay.Addr() || !c.Notify.StartTLS {
		t.Fatalf("notify config %+v", c.Notify)
	}
	ctx := context.Background()
	st, err := openStore(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	err = st.AddDomain(ctx, store.Domain{Name: "bad.test", State: admission.Testing, Contact: "postmaster@bad.test",
		MXPatterns: []string{"mx.bad.test"}, NextCheck: now.Add(-time.Minute), CreatedAt: now.Add(-time.Hour)})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}

	if _, stderr, code := execute(t, "worker", "--once", "--data-dir", dataDir); code != exitOK {
		t.Fatalf("worker --once: %d %s", code, stderr)
	}
	msgs := relay.Messages()
	if len(msgs) != 1 {
		t.Fatalf("relay received %d messages, want 1", len(msgs))
	}
	if !msgs[0].TLS || len(msgs[0].To) != 1 || msgs[0].To[0] != "postmaster@bad.test" {
		t.Errorf("message TLS %v to %q", msgs[0].TLS, msgs[0].To)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil {
		t.Fatal(err)
	}
	if s := msg.Header.Get("Subject"); !strings.Contains(s, "bad.test") {
		t.Errorf("Subject = %q", s)
	}
	if !bytes.Contains(msgs[0].Data, []byte("starttls.not_offered")) {
		t.Errorf("body lacks the finding code:\n%s", msgs[0].Data)
	}
}

// TestNotifyConfigErrors refuses a relay without a sender.
func TestNotifyConfigErrors(t *testing.T) {
	dataDir := t.TempDir()
	t.Setenv("STARTTLS_PRELOAD_NOTIFY_SMTP_RELAY", "127.0.0.1:25")
	if _, stderr, code := execute(t, "worker", "--once", "--data-dir", dataDir); code != exitUsage || !strings.Contains(stderr, "notify.from") {
		t.Errorf("worker without notify.from: %d %q", code, stderr)
	}
}
