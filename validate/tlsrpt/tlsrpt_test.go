package tlsrpt

import (
	"errors"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		in      string
		wantRUA []string
		wantErr error
	}{
		{in: "v=TLSRPTv1; rua=mailto:reports@example.com", wantRUA: []string{"mailto:reports@example.com"}},
		{in: "v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt;", wantRUA: []string{"https://reporting.example.com/v1/tlsrpt"}},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x ; ext=1", wantRUA: []string{"mailto:a@example.com", "https://r.example.com/x"}},
		{in: "v=TLSRPTv1; rua=mailto:a%21b@example.com", wantRUA: []string{"mailto:a%21b@example.com"}},
		{in: "v=TLSRPTv1; rua=mailto:a!b@example.com", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=http://r.example.com/", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=https:///path", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:nobody", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c,", wantErr: ErrSyntax},
		// RFC 8460 §3: rua may be given more than once; every URI counts.
		{in: "v=TLSRPTv1; rua=mailto:a@b.c; rua=mailto:d@e.f", wantRUA: []string{"mailto:a@b.c", "mailto:d@e.f"}},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c,https://r.example.com/x; ext=1; rua=mailto:d@e.f", wantRUA: []string{"mailto:a@b.c", "https://r.example.com/x", "mailto:d@e.f"}},
		// White space: around ";" (field-delim) as in MTA-STS, and around
		// "," between rua URIs (RFC 8460 §3: *WSP "," *WSP); nowhere else.
		{in: "v=TLSRPTv1 ;\trua=mailto:a@b.c\t; ", wantRUA: []string{"mailto:a@b.c"}},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c,\thttps://r.example.com/x", wantRUA: []string{"mailto:a@b.c", "https://r.example.com/x"}},
		{in: "v=TLSRPTv1; rua= mailto:a@b.c", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=\tmailto:a@b.c", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c ", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c , ", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c x", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua =mailto:a@b.c", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c; ext= 1", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c\r\n", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1;", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; ext=1", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c; ext=a b", wantErr: ErrSyntax},
		{in: "v=TLSRPTv1; rua=mailto:a@b.c;;", wantErr: ErrSyntax},
		{in: "v=tlsrptv1; rua=mailto:a@b.c", wantErr: ErrSyntax},
		{in: "rua=mailto:a@b.c; v=TLSRPTv1", wantErr: ErrSyntax},
		{in: "", wantErr: ErrSyntax},
	}
	for _, tt := range tests {
		r, err := ParseRecord(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseRecord(%q) = %+v, %v; want %v", tt.in, r, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tt.in, err)
			continue
		}
		var got []string
		for _, u := range r.RUA {
			got = append(got, u.String())
		}
		if strings.Join(got, " ") != strings.Join(tt.wantRUA, " ") {
			t.Errorf("ParseRecord(%q) rua = %q; want %q", tt.in, got, tt.wantRUA)
		}
	}
}

func TestSelectRecord(t *testing.T) {
	tests := []struct {
		name    string
		txts    []string
		wantErr error
	}{
		{"none", []string{"v=spf1 -all"}, ErrNoRecord},
		{"one", []string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@b.c"}, nil},
		{"two", []string{"v=TLSRPTv1; rua=mailto:a@b.c", "v=TLSRPTv1; rua=mailto:d@e.f"}, ErrMultipleRecords},
		{"broken", []string{"v=TLSRPTv1"}, ErrSyntax},
		// RFC 8460 §3: records not beginning with "v=TLSRPTv1;" are
		// discarded before counting.
		{"one, and a bare version", []string{"v=TLSRPTv1; rua=mailto:a@b.c", "v=TLSRPTv1"}, nil},
		{"space before ;", []string{"v=TLSRPTv1 ; rua=mailto:a@b.c"}, ErrSyntax},
	}
	for _, tt := range tests {
		_, err := SelectRecord(tt.txts)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("%s: got %v; want %v", tt.name, err, tt.wantErr)
		}
	}
}

func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=TLSRPTv1; rua=mailto:reports@example.com",
		"v=TLSRPTv1;rua=https://reporting.example.com/v1/tlsrpt;",
		"v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x ; ext=1",
		"v=TLSRPTv1; rua=mailto:a!b@example.com",
		"v=TLSRPTv1; rua=mailto:a@b.c; rua=mailto:d@e.f",
		"v=TLSRPTv1; rua= mailto:a@b.c ",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		if len(r.RUA) == 0 {
			t.Fatalf("ParseRecord(%q) accepted a record without rua", s)
		}
		for _, u := range r.RUA {
			if strings.ContainsAny(u.String(), " \t") {
				t.Fatalf("ParseRecord(%q) accepted a URI with white space: %q", s, u)
			}
			if sc := strings.ToLower(u.Scheme); sc != "mailto" && sc != "https" {
				t.Fatalf("ParseRecord(%q) accepted scheme %q", s, u.Scheme)
			}
		}
	})
}
