package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/admission"
)

func TestDomainsOutputGolden(t *testing.T) {
	at := time.Date(2026, 11, 20, 6, 0, 0, 0, time.UTC)
	failing := at.Add(-2 * time.Hour)
	statuses := []admission.Status{
		{Domain: "example.com", State: admission.Validating, MXPatterns: []string{"mx1.example.com", "*.mail.example.net"},
			ChecksPassed: 12, ChecksNeeded: 28, LastChecked: &at, NextCheck: at.Add(6 * time.Hour)},
		{Domain: "example.org", State: admission.Demoted, ListedAs: "testing", MXPatterns: []string{"mx.example.org"},
			ChecksPassed: 0, LastChecked: &at, FailingSince: &failing, NextCheck: at.Add(time.Hour)},
		{Domain: "new.example", State: admission.Pending, MXPatterns: []string{"mx.new.example"}, ChecksNeeded: 28, NextCheck: at},
	}
	var list bytes.Buffer
	if err := printStatuses(&list, statuses); err != nil {
		t.Fatal(err)
	}
	golden(t, "domains-list.golden", list.Bytes())

	detail := admission.Detail{
		Status: statuses[1],
		Checks: []admission.CheckEntry{
			{At: at, Eligible: false, MXHosts: []string{"mx.example.org"},
				Findings: json.RawMessage(`[{"code":"cert.expired","severity":"error"},{"code":"mta_sts.not_published","severity":"info"}]`)},
			{At: failing, Eligible: false, MXHosts: []string{"mx.example.org"}, Findings: json.RawMessage(`[{"code":"cert.expired","severity":"error"}]`)},
			{At: at.Add(-3 * time.Hour), Eligible: true, MXHosts: []string{"mx.example.org"}, Findings: json.RawMessage(`[]`)},
		},
		Decisions: []admission.DecisionEntry{
			{At: at.Add(-30 * 24 * time.Hour), From: admission.Pending, To: admission.Validating, Reason: admission.CodeAddedByOperator + ": added by an operator; ownership not checked"},
			{At: at.Add(-23 * 24 * time.Hour), From: admission.Validating, To: admission.Testing, Reason: admission.CodeAdmitted + ": eligible on all 29 checks over 7.0 days"},
			{At: at, From: admission.Testing, To: admission.Demoted, Reason: admission.CodeFailure + ": failing since 2026-11-20T04:00:00Z (cert.expired)"},
		},
	}
	var show bytes.Buffer
	printDetail(&show, detail)
	golden(t, "domains-show.golden", show.Bytes())
}

// TestDomainsAddLifecycle: add and remove go through package lifecycle —
// a pending domain gets its TXT proof, an active one is declared again
// only with --skip-ownership, a removed one can be added again, and each
// change is a decision with its reason code.
func TestDomainsAddLifecycle(t *testing.T) {
	dataDir := t.TempDir()
	run := func(want int, args ...string) string {
		t.Helper()
		out, stderr, code := execute(t, append(append([]string{"domains"}, args...), "--data-dir", dataDir)...)
		if code != want {
			t.Fatalf("domains %v: exit %d (%s), want %d", args, code, stderr, want)
		}
		return out + stderr
	}
	out := run(exitOK, "add", "life.test", "--mx", "mx.life.test")
	if !strings.Contains(out, "pending") || !strings.Contains(out, `TXT _starttls-preload.life.test "starttls-preload-verify=`) {
		t.Errorf("add: %q", out)
	}
	if out := run(exitOK, "add", "life.test", "--mx", "mx.life.test", "--skip-ownership"); !strings.Contains(out, "pending → validating") {
		t.Errorf("add --skip-ownership of a pending domain: %q", out)
	}
	if out := run(exitFindings, "add", "life.test", "--mx", "mx2.life.test"); !strings.Contains(out, "--skip-ownership") {
		t.Errorf("add of a validating domain without --skip-ownership: %q", out)
	}
	if out := run(exitOK, "add", "life.test", "--mx", "mx2.life.test", "--skip-ownership"); !strings.Contains(out, "declared again (mx2.life.test); state validating") {
		t.Errorf("add --skip-ownership of a validating domain: %q", out)
	}
	run(exitOK, "remove", "life.test")
	if out := run(exitOK, "add", "life.test", "--mx", "mx.life.test"); !strings.Contains(out, "added again: pending") {
		t.Errorf("add after remove: %q", out)
	}
	out = run(exitOK, "show", "life.test")
	for _, code := range []string{admission.CodeAddedByOperator, admission.CodeRequested, admission.CodeReopened} {
		if !strings.Contains(out, code+": ") {
			t.Errorf("show lacks a %s decision:\n%s", code, out)
		}
	}
	if out := run(exitUsage, "add", "life.test", "--mx", "mx.life.test", "--contact", "a@b.test\nBcc: c@d.test"); out == "" {
		t.Error("no message for a bad contact")
	}
}
