package mailsink

import (
	"context"
	"errors"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

func send(t *testing.T, addr, to, body string) {
	t.Helper()
	msg := "From: service@lab.test\r\nTo: " + to + "\r\nSubject: Confirm\r\n\r\n" + body + "\r\n"
	if err := smtp.SendMail(addr, nil, "service@lab.test", []string{to}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

func TestSinkKeepsAndWaits(t *testing.T) {
	s := New(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// A message sent after Wait starts is seen.
	got := make(chan Message, 1)
	go func() {
		m, err := s.Wait(ctx, "postmaster@a.test", 0)
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	send(t, s.Addr(), "postmaster@b.test", "for b")
	send(t, s.Addr(), "Postmaster@A.test", "link: http://127.0.0.1/confirm?token=x")
	m := <-got
	if m.From != "service@lab.test" || !strings.Contains(m.Body(), "token=x") {
		t.Errorf("message %+v body %q", m, m.Body())
	}
	if h, err := m.Header(); err != nil || h.Get("Subject") != "Confirm" {
		t.Errorf("header %v %v", h, err)
	}
	// A message sent before Wait is seen; skip picks a later one.
	send(t, s.Addr(), "postmaster@a.test", "second")
	if m, err := s.Wait(ctx, "postmaster@a.test", 1); err != nil || !strings.Contains(m.Body(), "second") {
		t.Errorf("second message: %q %v", m.Body(), err)
	}
	if n := len(s.Messages()); n != 3 {
		t.Errorf("%d messages kept, want 3", n)
	}
	short, cancelShort := context.WithCancel(ctx)
	cancelShort()
	if _, err := s.Wait(short, "nobody@a.test", 0); !errors.Is(err, ErrNoMessage) {
		t.Errorf("wait for a message never sent: %v", err)
	}
}
