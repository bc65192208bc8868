package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

func TestRunCmd(t *testing.T) {
	var sawHeader atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Bench") == "1" {
			sawHeader.Store(true)
		}
		w.Write([]byte("ok"))
	}))
	t.Cleanup(ts.Close)
	ctx := context.Background()
	if err := runCmd(ctx, []string{"-d", "50ms", "-c", "2", "-H", "X-Bench: 1", "-url", ts.URL + "/d/{i}", "-range", "10", "-max-p99", "1m"}); err != nil {
		t.Errorf("run within its targets: %v", err)
	}
	if !sawHeader.Load() {
		t.Error("-H header not sent")
	}
	// A figure below its target is a miss (exit status 1), not a usage error.
	var miss missed
	if err := runCmd(ctx, []string{"-d", "20ms", "-url", ts.URL + "/", "-min-rps", "1e12"}); !errors.As(err, &miss) {
		t.Errorf("unreachable -min-rps: %v, want a miss", err)
	}
	for _, args := range [][]string{
		{"-d", "10ms"},
		{"-d", "10ms", "-url", ts.URL, "-H", "no colon"},
		{"-d", "10ms", "-url", ts.URL + "/{i}"},
	} {
		if err := runCmd(ctx, args); err == nil || errors.As(err, &miss) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
}
