package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		in      string
		wantID  string
		wantExt []Pair
		wantDup []string
		wantErr error
	}{
		{in: "v=STSv1; id=20160831085700Z;", wantID: "20160831085700Z"},
		{in: "v=STSv1; id=20160831085700Z", wantID: "20160831085700Z"},
		{in: "v=STSv1;id=abc", wantID: "abc"},
		{in: "v=STSv1 ;\tid=abc ; ", wantID: "abc"},
		{in: "v=STSv1; id=abc; ext-1.x=val!ue", wantID: "abc", wantExt: []Pair{{"ext-1.x", "val!ue"}}},
		{in: "v=STSv1; id=" + strings.Repeat("a", 32), wantID: strings.Repeat("a", 32)},
		{in: "v=STSv1; id=" + strings.Repeat("a", 33), wantErr: ErrRecordSyntax},
		{in: "v=STSv1;", wantErr: ErrRecordSyntax},
		{in: "v=STSv1", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=ab-c", wantErr: ErrRecordSyntax},
		// RFC 8461 §3.2: a duplicated non-repeatable field is not an error;
		// all entries but the first are ignored.
		{in: "v=STSv1; id=a; id=b", wantID: "a", wantDup: []string{"id"}},
		{in: "v=STSv1; id=a; id=b; id=c", wantID: "a", wantDup: []string{"id"}},
		{in: "v=STSv1; id=a; id=!", wantID: "a", wantDup: []string{"id"}},
		{in: "v=STSv1; v=STSv1; id=a", wantID: "a", wantDup: []string{"v"}},
		{in: "v=STSv1; id=a; v=STSv2; id=b", wantID: "a", wantDup: []string{"v", "id"}},
		{in: "v=STSv1; id=a; id=", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=!; id=a", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=a;;", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; ; id=a", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=a b", wantErr: ErrRecordSyntax},
		{in: " v=STSv1; id=a", wantErr: ErrRecordSyntax},
		{in: "v=stsv1; id=a", wantErr: ErrRecordSyntax},
		{in: "v=STSv2; id=a", wantErr: ErrRecordSyntax},
		{in: "id=a; v=STSv1", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=a; ext", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=a; _ext=1", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=a; ext=a=b", wantErr: ErrRecordSyntax},
		{in: "v=STSv1; id=a; ext=\x01", wantErr: ErrRecordSyntax},
		{in: "", wantErr: ErrRecordSyntax},
	}
	for _, tt := range tests {
		r, err := ParseRecord(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("ParseRecord(%q) = %v, %v; want error %v", tt.in, r, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseRecord(%q): %v", tt.in, err)
			continue
		}
		if r.ID != tt.wantID || !reflect.DeepEqual(r.Extensions, tt.wantExt) || !reflect.DeepEqual(r.Duplicates, tt.wantDup) {
			t.Errorf("ParseRecord(%q) = %+v; want id %q ext %v duplicates %q", tt.in, r, tt.wantID, tt.wantExt, tt.wantDup)
		}
	}
}

func TestSelectRecord(t *testing.T) {
	tests := []struct {
		name    string
		txts    []string
		wantID  string
		wantErr error
	}{
		{"none", nil, "", ErrNoRecord},
		{"others only", []string{"v=spf1 -all", "v=STSv10; id=1", "hello"}, "", ErrNoRecord},
		{"one among others", []string{"v=spf1 -all", "v=STSv1; id=1"}, "1", nil},
		{"two", []string{"v=STSv1; id=1", "v=STSv1; id=2"}, "", ErrMultipleRecords},
		// RFC 8461 §3.1: records that do not begin with "v=STSv1;" are
		// discarded before counting.
		{"one, and a bare version", []string{"v=STSv1; id=1", "v=STSv1"}, "1", nil},
		{"one, and one without ;", []string{"v=STSv1 id=2", "v=STSv1;id=1"}, "1", nil},
		{"two, and a bare version", []string{"v=STSv1; id=1", "v=STSv1", "v=STSv1;id=2"}, "", ErrMultipleRecords},
		{"one broken", []string{"v=STSv1; id=!"}, "", ErrRecordSyntax},
		{"bare version", []string{"v=STSv1"}, "", ErrRecordSyntax},
		{"space before ;", []string{"v=STSv1 ; id=1"}, "", ErrRecordSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := SelectRecord(tt.txts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, %v; want %v", r, err, tt.wantErr)
				}
				return
			}
			if err != nil || r.ID != tt.wantID {
				t.Fatalf("got %+v, %v; want id %q", r, err, tt.wantID)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    *Policy
		wantErr error
	}{
		{
			name: "RFC example, CRLF",
			in:   "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			want: &Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "backupmx.example.com"}, MaxAge: 604800},
		},
		{
			name: "LF, no final newline, any order, upper-case mx",
			in:   "mx: MX1.Example.COM\nmax_age: 86400\nmode: testing\nversion: STSv1",
			want: &Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"mx1.example.com"}, MaxAge: 86400},
		},
		{
			name: "none without mx",
			in:   "version: STSv1\nmode: none\nmax_age: 0\n",
			want: &Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 0},
		},
		{
			name: "unknown keys ignored, white space after colon and at line end",
			in:   "version:STSv1\nmode:\tenforce \nmx:  mx.example.com\nmax_age: 31557600\nfoo-bar: some value ü\n",
			want: &Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"mx.example.com"}, MaxAge: 31557600, Extensions: []Pair{{"foo-bar", "some value ü"}}},
		},
		{name: "empty", in: "", wantErr: ErrPolicySyntax},
		{name: "newline only", in: "\r\n", wantErr: ErrPolicySyntax},
		{name: "max_age too big", in: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 31557601\n", wantErr: ErrPolicySyntax},
		{name: "max_age 11 digits", in: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 00000000001\n", wantErr: ErrPolicySyntax},
		{name: "max_age negative", in: "version: STSv1\nmode: enforce\nmx: a.b\nmax_age: -1\n", wantErr: ErrPolicySyntax},
		{name: "max_age missing", in: "version: STSv1\nmode: enforce\nmx: a.b\n", wantErr: ErrPolicySyntax},
		{name: "version missing", in: "mode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "version wrong", in: "version: STSv2\nmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mode missing", in: "version: STSv1\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mode wrong", in: "version: STSv1\nmode: Enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		// RFC 8461 §3.2: "If any non-repeated field -- i.e., all fields
		// excepting "mx" -- is duplicated, all entries except for the first
		// SHALL be ignored."
		{
			name: "mode twice: the first is used",
			in:   "version: STSv1\nmode: enforce\nmode: testing\nmx: a.b\nmax_age: 1\n",
			want: &Policy{Version: "STSv1", Mode: ModeEnforce, MX: []string{"a.b"}, MaxAge: 1, Duplicates: []string{"mode"}},
		},
		{
			name: "every non-repeatable field twice",
			in:   "version: STSv1\nmax_age: 60\nmode: testing\nmx: a.b\nmode: enforce\nmax_age: 99\nversion: STSv2\nmx: c.d\n",
			want: &Policy{Version: "STSv1", Mode: ModeTesting, MX: []string{"a.b", "c.d"}, MaxAge: 60, Duplicates: []string{"mode", "max_age", "version"}},
		},
		{
			name: "a duplicate with a value the field does not allow is still ignored",
			in:   "version: STSv1\nmode: none\nmode: sometimes\nmax_age: 1\nmax_age: soon\n",
			want: &Policy{Version: "STSv1", Mode: ModeNone, MaxAge: 1, Duplicates: []string{"mode", "max_age"}},
		},
		{name: "the first mode is invalid", in: "version: STSv1\nmode: sometimes\nmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "a duplicate that is not a field value", in: "version: STSv1\nmode: enforce\nmode: \x01\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mx missing", in: "version: STSv1\nmode: enforce\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mx bad", in: "version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mx double wildcard", in: "version: STSv1\nmode: enforce\nmx: *.*.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mx inner wildcard", in: "version: STSv1\nmode: enforce\nmx: a.*.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "mx trailing dot", in: "version: STSv1\nmode: enforce\nmx: a.b.\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "blank line", in: "version: STSv1\n\nmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "stray CR", in: "version: STSv1\rmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "key with space", in: "version : STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "leading space", in: " version: STSv1\nmode: enforce\nmx: a.b\nmax_age: 1\n", wantErr: ErrPolicySyntax},
		{name: "HTML", in: "<html><body>Not found</body></html>\n", wantErr: ErrPolicySyntax},
		{name: "too large", in: "version: STSv1\nmode: none\nmax_age: 1\nx: " + strings.Repeat("a", MaxPolicySize), wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.in))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %+v, %v; want %v", p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p, tt.want) {
				t.Fatalf("got %+v; want %+v", p, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net"}}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.Example.com.", true},
		{"mail2.example.com", false},
		{"example.com", false},
		{"mx.example.net", true},
		{"MX.EXAMPLE.NET.", true},
		{"a.b.example.net", false}, // RFC 8461 §4.1: one label only
		{"example.net", false},
		{".example.net", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("Match(%q) = %v; want %v", tt.host, got, tt.want)
		}
	}
}

func TestParsePolicySizeLimit(t *testing.T) {
	head := "version: STSv1\nmode: none\nmax_age: 1\npad: "
	exact := head + strings.Repeat("a", MaxPolicySize-len(head)-1) + "\n"
	if len(exact) != MaxPolicySize {
		t.Fatalf("test policy is %d bytes", len(exact))
	}
	if _, err := ParsePolicy([]byte(exact)); err != nil {
		t.Fatalf("policy of exactly %d bytes: %v", MaxPolicySize, err)
	}
	if _, err := ParsePolicy([]byte(exact + "b")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("policy of %d bytes: got %v; want %v", MaxPolicySize+1, err, ErrTooLarge)
	}
}

// TestMatchALabels: names are compared as A-labels, whichever form the
// pattern or the host is written in.
func TestMatchALabels(t *testing.T) {
	for _, tt := range []struct {
		pattern, host string
		want          bool
	}{
		{"*.xn--bcher-kva.example", "mx.bücher.example", true},
		{"*.xn--bcher-kva.example", "MX.BÜCHER.example.", true},
		{"*.bücher.example", "mx.xn--bcher-kva.example", true},
		{"mx.bücher.example", "mx.xn--bcher-kva.example", true},
		{"mx.xn--bcher-kva.example", "mx.bücher.example", true},
		{"XN--BCHER-KVA.example", "bücher.example", true},
		{"mx.xn--bcher-kva.example", "mx.bucher.example", false},
		{"*.xn--bcher-kva.example", "a.b.bücher.example", false},
		{"*.example", "bad\u00a0label.example", false},
		{"*.example", "a..example", false},
	} {
		if got := MatchPattern(tt.pattern, tt.host); got != tt.want {
			t.Errorf("MatchPattern(%q, %q) = %v; want %v", tt.pattern, tt.host, got, tt.want)
		}
		p := &Policy{MX: []string{tt.pattern}}
		if got := p.Match(tt.host); got != tt.want {
			t.Errorf("Policy{MX: %q}.Match(%q) = %v; want %v", tt.pattern, tt.host, got, tt.want)
		}
	}
}
