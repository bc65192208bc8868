package validate

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		code  int
		lines int
		err   error
	}{
		{"single", "220 mx.example ESMTP\r\n", 220, 1, nil},
		{"bare code", "250\r\n", 250, 1, nil},
		{"multi", "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", 250, 3, nil},
		{"bare lf", "220 hi\n", 220, 1, nil},
		{"code changes", "250-a\r\n251 b\r\n", 0, 0, ErrReplyMalformed},
		{"not digits", "hello\r\n", 0, 0, ErrReplyMalformed},
		{"bad separator", "250_x\r\n", 0, 0, ErrReplyMalformed},
		{"1xx", "199 x\r\n", 0, 0, ErrReplyMalformed},
		{"eof", "250-a\r\n", 0, 0, io.ErrUnexpectedEOF},
		{"long line", "220 " + strings.Repeat("x", maxReplyLine) + "\r\n", 0, 0, ErrReplyLineTooLong},
		{"too many lines", strings.Repeat("220-x\r\n", maxReplyLines+1), 0, 0, ErrReplyTooManyLines},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := readReply(newReplyReader(strings.NewReader(tt.in)))
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || r.code != tt.code || len(r.lines) != tt.lines {
				t.Fatalf("got %d %d lines %v, want %d %d", r.code, len(r.lines), err, tt.code, tt.lines)
			}
		})
	}
}

func TestConnectionByteCap(t *testing.T) {
	// Many short, valid replies still end at the per-connection cap.
	br := newReplyReader(strings.NewReader(strings.Repeat("250 ok\r\n", maxConnBytes)))
	var err error
	for n := 0; err == nil; n++ {
		_, err = readReply(br)
		if n > maxConnBytes {
			t.Fatal("no cap")
		}
	}
	if !errors.Is(err, ErrTooMuchData) {
		t.Fatalf("err = %v, want ErrTooMuchData", err)
	}
}

func TestHasExtension(t *testing.T) {
	r := reply{code: 250, lines: []string{"mx starttls", "PIPELINING", "starttls"}}
	if !hasExtension(r, "STARTTLS") {
		t.Error("starttls not found")
	}
	r.lines = []string{"mx STARTTLS", "PIPELINING"}
	if hasExtension(r, "STARTTLS") {
		t.Error("the greeting line is not an extension")
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx.example ESMTP\r\n",
		"250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 STARTTLS\r\n",
		"250\n",
		"554 5.3.2 no\r\n",
		"220-a\r\n220-b\r\n",
		"220 " + strings.Repeat("x", 990) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := newReplyReader(strings.NewReader(string(data)))
		total := 0
		for range 1000 {
			r, err := readReply(br)
			if err != nil {
				return
			}
			if r.code < 200 || r.code > 599 || len(r.lines) == 0 || len(r.lines) > maxReplyLines {
				t.Fatalf("bad reply %+v", r)
			}
			for _, l := range r.lines {
				total += len(l)
				if len(l) > maxReplyLine {
					t.Fatalf("line of %d bytes", len(l))
				}
			}
			if total > maxConnBytes {
				t.Fatalf("read %d bytes past the cap", total)
			}
		}
		_ = bufio.ErrBufferFull
	})
}

func TestIsPublic(t *testing.T) {
	tests := map[string]bool{
		"8.8.8.8": true, "2a00:1450::1": true, "127.0.0.1": false, "10.1.2.3": false, "192.168.1.1": false,
		"172.16.0.1": false, "169.254.1.1": false, "::1": false, "fe80::1": false, "fc00::1": false,
		"0.0.0.0": false, "224.0.0.1": false, "100.64.0.1": false, "192.0.2.1": false, "::ffff:10.0.0.1": false,
		"::ffff:8.8.8.8": true, "2001:db8::1": false, "255.255.255.255": false, "ff02::1": false,
	}
	for s, want := range tests {
		ip := mustAddr(t, s)
		if got := isPublic(ip); got != want {
			t.Errorf("isPublic(%s) = %v, want %v", s, got, want)
		}
	}
}
