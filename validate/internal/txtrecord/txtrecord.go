// Package txtrecord holds the TXT record grammar that MTA-STS (RFC 8461
// §3.1) and TLS-RPT (RFC 8460 §3) share: a version field first, then fields
// separated by field-delim, each "name=value" with the same ext-name and
// ext-value rules. Each caller describes its record type with a Grammar
// holding its version and its own sentinel errors, which the errors
// returned here are or wrap.
package txtrecord

import (
	"errors"
	"fmt"
	"strings"
)

// Grammar is one record type of the shared grammar: its version field and
// the sentinel errors its package returns.
type Grammar struct {
	// Version is the first field, exactly (case-sensitive): "v=STSv1",
	// "v=TLSRPTv1".
	Version string
	// NoWSP refuses white space inside a field (RFC 8461 §3.1: no
	// sts-field holds any; RFC 8460 §3 allows it after a comma in rua).
	NoWSP bool
	// NoRecord, Multiple and Syntax are returned (Syntax wrapped, with the
	// reason) for no record, more than one record and a malformed record.
	NoRecord, Multiple, Syntax error
}

// Select picks the record among the strings of a TXT RRset (each string one
// record, its character-strings already joined). RFC 8461 §3.1 and RFC 8460
// §3: records that do not begin with the version followed by ";" are
// discarded before counting; none left is g.NoRecord, more than one is
// g.Multiple (both RFCs then treat the policy as absent).
//
// When nothing is left but near misses (the version alone, or followed by
// white space), the result is a g.Syntax error naming the first of them:
// senders discard it as they would no record, but its owner meant one.
func (g Grammar) Select(txts []string) (string, error) {
	var record, nearMiss string
	n, near := 0, 0
	for _, t := range txts {
		rest, ok := strings.CutPrefix(t, g.Version)
		if !ok {
			continue
		}
		switch {
		case strings.HasPrefix(rest, ";"):
			// RFC 8461 §3.1: "records that do not begin with "v=STSv1;" are
			// discarded"; RFC 8460 §3 likewise with "v=TLSRPTv1;".
			record = t
			n++
		case rest == "" || rest[0] == ' ' || rest[0] == '\t':
			if near == 0 {
				nearMiss = t
			}
			near++
		}
	}
	switch {
	case n == 1:
		return record, nil
	case n > 1:
		return "", fmt.Errorf("%w (%d records)", g.Multiple, n)
	case near > 0:
		return "", fmt.Errorf("%w: %q does not begin with \"%s;\", so senders discard it", g.Syntax, cut(nearMiss), g.Version)
	default:
		return "", g.NoRecord
	}
}

// cut shortens a record quoted in an error.
func cut(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// SelectParse is g.Select followed by parse on the record picked: the
// whole of a package's SelectRecord.
func SelectParse[R any](g Grammar, txts []string, parse func(string) (R, error)) (R, error) {
	record, err := g.Select(txts)
	if err != nil {
		var zero R
		return zero, err
	}
	return parse(record)
}

// Parse checks a record up to its field names and calls field with each
// field after the version, in order, stopping at the first error:
//
//	record      = version 1*(field-delim field) [field-delim]
//	field-delim = *WSP ";" *WSP
//	field       = ext-name "=" value
//
// (RFC 8461 §3.1 sts-text-record, RFC 8460 §3 tlsrpt-record). name is
// already a valid ext-name; the value and the meaning of known names are
// field's to check. Parse's own errors wrap g.Syntax; field's are returned
// as they are.
func (g Grammar) Parse(txt string, field func(name, value string) error) error {
	fields, err := split(txt, g.NoWSP)
	if err != nil {
		return fmt.Errorf("%w: %s", g.Syntax, err)
	}
	// RFC 8461 §3.1, RFC 8460 §3: the version comes first, exactly (%s).
	if len(fields) == 0 || fields[0] != g.Version {
		return fmt.Errorf("%w: must start with %q", g.Syntax, g.Version)
	}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return fmt.Errorf("%w: field %q has no \"=\"", g.Syntax, f)
		}
		if !ValidExtName(k) {
			return fmt.Errorf("%w: bad field name %q", g.Syntax, k)
		}
		if err := field(k, v); err != nil {
			return err
		}
	}
	return nil
}

// split splits a record on field-delim = *WSP ";" *WSP (RFC 8461 §3.1,
// RFC 8460 §3), allowing one trailing delimiter (the optional
// [field-delim] at the end of both grammars) and no empty field. With
// noWSP it also refuses white space inside a field: no field of RFC 8461
// §3.1 (sts-id, sts-ext-name "=" sts-ext-value) has any, while TLS-RPT
// allows it after a comma in rua.
func split(s string, noWSP bool) ([]string, error) {
	parts := strings.Split(s, ";")
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		t := p
		if i > 0 {
			t = strings.TrimLeft(t, " \t")
		}
		if i < len(parts)-1 {
			t = strings.TrimRight(t, " \t")
		}
		if i == len(parts)-1 && i > 0 && t == "" {
			// The optional trailing field-delim.
			break
		}
		if t == "" {
			return nil, errors.New("empty field")
		}
		if noWSP && strings.ContainsAny(t, " \t") {
			return nil, fmt.Errorf("white space inside field %q", t)
		}
		out = append(out, t)
	}
	return out, nil
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// ValidExtName reports whether s is an ext-name (RFC 8461 §3.1
// sts-ext-name, RFC 8460 §3 tlsrpt-ext-name, and RFC 8461 §3.2
// sts-policy-ext-name):
//
//	(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
func ValidExtName(s string) bool {
	if s == "" || len(s) > 32 || !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// ValidExtValue reports whether s is an ext-value (RFC 8461 §3.1
// sts-ext-value, RFC 8460 §3 tlsrpt-ext-value): visible characters but
// "=" and ";", at least one:
//
//	1*(%x21-3A / %x3C / %x3E-7E)
func ValidExtValue(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}
