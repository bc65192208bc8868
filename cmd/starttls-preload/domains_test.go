package main

import (
	"bytes"
	"encoding/json"
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
