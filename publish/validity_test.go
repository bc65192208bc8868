package publish

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// A list whose expires is not after its timestamp, one valid for more than
// MaxValidity, and one with serial 0 (never published: serials start at 1)
// are refused, and the installed files stay; a list valid for a year is
// accepted.
func TestFetchRefusesBadValidity(t *testing.T) {
	key := newKey(t)
	ts := t0.Add(-time.Hour)
	tests := []struct {
		name          string
		serial        int64
		timestamp     time.Time
		expires       time.Time
		want          error // nil: installed
		wantInMessage string
	}{
		{name: "expires equals timestamp", serial: 11, timestamp: ts, expires: ts, want: ErrRefusedList, wantInMessage: "not after"},
		{name: "expires before timestamp", serial: 11, timestamp: ts, expires: ts.Add(-time.Second), want: ErrRefusedList, wantInMessage: "not after"},
		{name: "valid for 367 days", serial: 11, timestamp: ts, expires: ts.Add(367 * 24 * time.Hour), want: ErrRefusedList, wantInMessage: "366 days"},
		{name: "valid for ten years", serial: 11, timestamp: ts, expires: ts.AddDate(10, 0, 0), want: ErrRefusedList, wantInMessage: "366 days"},
		{name: "serial 0", serial: 0, timestamp: ts, expires: ts.Add(24 * time.Hour), want: ErrRefusedList, wantInMessage: "serial 0"},
		{name: "valid for a year", serial: 11, timestamp: ts, expires: ts.AddDate(1, 0, 0)},
		{name: "valid for 366 days", serial: 11, timestamp: ts, expires: ts.Add(MaxValidity)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTestServer(t, key, testList(10, 1))
			c := newClient(t, srv.url(), key.Public())
			if _, err := c.fetch(t); err != nil {
				t.Fatal(err)
			}
			before := c.installed(t)
			l := testList(tt.serial, 2)
			l.Timestamp, l.Expires = tt.timestamp, tt.expires
			s := snapshot(t, key, l)
			c.opts.URL = badServer(t, bytesHandler(s.List), bytesHandler(s.Sig))
			res, err := c.fetch(t)
			if tt.want == nil {
				if err != nil || res.Serial != tt.serial {
					t.Fatalf("res %+v, err %v", res, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantInMessage) {
				t.Fatalf("err = %v, want %v saying %q", err, tt.want, tt.wantInMessage)
			}
			assertSame(t, before, c.installed(t))
		})
	}
}

// The withdrawal says that the list expired, and that enforcement is
// withdrawn, once each; the installed comment likewise.
func TestFetchWithdrawalSaysItOnce(t *testing.T) {
	key := newKey(t)
	srv := newTestServer(t, key, testList(10, 1))
	c := newClient(t, srv.url(), key.Public())
	if _, err := c.fetch(t); err != nil {
		t.Fatal(err)
	}
	c.opts.Now = func() time.Time { return t0.Add(30 * 24 * time.Hour) }
	for _, run := range []string{"withdrawing", "withdrawn", "withdrawn, server down"} {
		if run == "withdrawn, server down" {
			c.opts.URL = "http://127.0.0.1:1/" + ListFile
		}
		res, err := c.fetch(t)
		if !errors.Is(err, ErrExpired) || res == nil || !res.Withdrawn {
			t.Fatalf("%s: res %+v, err %v", run, res, err)
		}
		msg := err.Error()
		if n := strings.Count(msg, "expired"); n != 1 {
			t.Errorf("%s: %q says expired %d times", run, msg, n)
		}
		if n := strings.Count(msg, "withdrawn"); n != 1 {
			t.Errorf("%s: %q says withdrawn %d times", run, msg, n)
		}
	}
	b := readOrFail(t, c.opts.PostfixMap)
	if n := strings.Count(string(b), "until"); n != 1 {
		t.Errorf("the installed comment says when it ends %d times:\n%s", n, b)
	}
}
