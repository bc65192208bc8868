package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-preload/starttls-preload/validate"
)

func init() {
	// -update rewrites golden files; another test file may define it too.
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite the golden files in testdata")
	}
}

func updateGolden() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if updateGolden() {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

// goldenResults are a passing and a failing domain as the validator reports
// them.
func goldenResults() []*validate.Result {
	at := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC)
	return []*validate.Result{
		{
			Domain: "example.test", Eligible: true, DNSSEC: true, CheckedAt: at,
			MXs: []validate.MXResult{{Host: "mx.example.test", Preference: 10, Addresses: []validate.AddressResult{{
				IP: "192.0.2.25", OK: true, TLSVersion: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256",
				CertSubject: "CN=mx.example.test", CertIssuer: "CN=Lab Intermediate CA,O=starttls-preload lab",
				CertNotAfter: at.Add(60 * 24 * time.Hour),
			}}}},
			MTASTS: &validate.MTASTSInfo{ID: "20261101", Mode: "enforce", MX: []string{"mx.example.test"}, MaxAge: 604800},
			Findings: []validate.Finding{
				{Code: "mta_sts.enforce", Severity: validate.SeverityInfo, Summary: "MTA-STS enforced", Message: "The MTA-STS policy (id 20261101) is in enforce mode. Nothing to do."},
				{Code: "tlsrpt.not_published", Severity: validate.SeverityInfo, Summary: "No TLS-RPT record", Message: "example.test publishes no TLS-RPT record."},
			},
		},
		{
			Domain: "broken.test", Eligible: false, CheckedAt: at,
			MXs: []validate.MXResult{
				{Host: "mx1.broken.test", Preference: 10, Addresses: []validate.AddressResult{{IP: "192.0.2.26"}}},
				{Host: "mx2.broken.test", Preference: 20, Addresses: []validate.AddressResult{}},
			},
			Findings: []validate.Finding{
				{Code: "starttls.not_offered", Severity: validate.SeverityError, Summary: "STARTTLS not offered", Message: "The EHLO reply does not list STARTTLS. Enable STARTTLS on the server.", Host: "mx1.broken.test", IP: "192.0.2.26"},
				{Code: "dns.no_address", Severity: validate.SeverityError, Summary: "MX host has no address", Message: "The MX host mx2.broken.test has no A or AAAA records.", Host: "mx2.broken.test"},
			},
		},
	}
}

func TestCheckOutputGolden(t *testing.T) {
	var report, jsonl bytes.Buffer
	for _, r := range goldenResults() {
		if err := writeReport(&report, r); err != nil {
			t.Fatal(err)
		}
		if err := writeJSONResult(&jsonl, r); err != nil {
			t.Fatal(err)
		}
	}
	golden(t, "check-report.golden", report.Bytes())
	golden(t, "check-json.golden", jsonl.Bytes())
}
