package listgen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// effList is the EFF STARTTLS Everywhere policy list, version 0.1
// (policy-0.1.schema.json).
type effList struct {
	Timestamp     json.RawMessage      `json:"timestamp"`
	Expires       json.RawMessage      `json:"expires"`
	Version       string               `json:"version"`
	Author        string               `json:"author"`
	PolicyAliases map[string]effPolicy `json:"policy-aliases"`
	Policies      map[string]effPolicy `json:"policies"`
}

type effPolicy struct {
	Mode        string   `json:"mode"`
	MXs         []string `json:"mxs"`
	PolicyAlias string   `json:"policy-alias"`
}

// ImportEFF converts an EFF STARTTLS Everywhere list (version "0.1") to a
// List with the given serial. Its dates may be RFC 3339 strings (any
// offset, any fraction) or integer seconds since the epoch, as the EFF
// schema allowed; they become UTC, truncated to the second. Names become
// lower-case A-labels; an MX suffix ".example.net" becomes
// "*.example.net"; a policy without a mode gets "testing" (the EFF
// default). Field names match case-insensitively, as encoding/json does;
// unknown fields are refused. Errors name the JSON path.
func ImportEFF(b []byte, serial int64) (*List, error) {
	if len(b) > MaxSize {
		return nil, ErrTooLarge
	}
	var e effList
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return nil, &ParseError{Path: "$", Offset: int(dec.InputOffset()), Msg: err.Error()}
	}
	if dec.More() {
		return nil, &ParseError{Path: "$", Offset: int(dec.InputOffset()), Msg: "data after the list"}
	}
	if e.Version != "0.1" {
		return nil, &ParseError{Path: "$.version", Offset: -1, Msg: fmt.Sprintf("EFF list version %q, want \"0.1\"", e.Version)}
	}
	l := &List{
		Version:       FormatVersion,
		Serial:        serial,
		Author:        e.Author,
		PolicyAliases: make(map[string]Policy, len(e.PolicyAliases)),
		Policies:      make(map[string]Policy, len(e.Policies)),
	}
	var err error
	if l.Timestamp, err = effTime("$.timestamp", e.Timestamp); err != nil {
		return nil, err
	}
	if l.Expires, err = effTime("$.expires", e.Expires); err != nil {
		return nil, err
	}
	for name, p := range e.PolicyAliases {
		if err := checkAliasName(name); err != nil {
			return nil, &ParseError{Path: keyPath("policy-aliases", name), Offset: -1, Msg: err.Error()}
		}
		pol, err := effPolicyOf(keyPath("policy-aliases", name), p, true)
		if err != nil {
			return nil, err
		}
		l.PolicyAliases[name] = pol
	}
	for name, p := range e.Policies {
		d, err := NormalizeName(name)
		if err != nil {
			return nil, &ParseError{Path: keyPath("policies", name), Offset: -1, Msg: err.Error()}
		}
		if _, dup := l.Policies[d]; dup {
			return nil, &ParseError{Path: keyPath("policies", name), Offset: -1, Msg: fmt.Sprintf("duplicate domain %q", d)}
		}
		pol, err := effPolicyOf(keyPath("policies", name), p, false)
		if err != nil {
			return nil, err
		}
		l.Policies[d] = pol
	}
	return l, nil
}

func effPolicyOf(path string, p effPolicy, isAlias bool) (Policy, error) {
	if p.PolicyAlias != "" {
		pol := Policy{PolicyAlias: p.PolicyAlias, Mode: p.Mode, MXs: p.MXs}
		if e := checkPolicyShape(pol, isAlias); e != nil {
			e.Path, e.Offset = path+e.Path, -1
			return Policy{}, e
		}
		return pol, nil
	}
	pol := Policy{Mode: p.Mode}
	if pol.Mode == "" {
		pol.Mode = ModeTesting
	}
	if pol.Mode != ModeTesting && pol.Mode != ModeEnforce {
		return Policy{}, &ParseError{Path: path + ".mode", Offset: -1, Msg: fmt.Sprintf("mode %q", p.Mode)}
	}
	seen := make(map[string]bool, len(p.MXs))
	for i, mx := range p.MXs {
		n, err := NormalizePattern(mx)
		if err != nil {
			return Policy{}, &ParseError{Path: fmt.Sprintf("%s.mxs[%d]", path, i), Offset: -1, Msg: err.Error()}
		}
		if !seen[n] {
			seen[n] = true
			pol.MXs = append(pol.MXs, n)
		}
	}
	if e := checkPolicyShape(pol, isAlias); e != nil {
		e.Path, e.Offset = path+e.Path, -1
		return Policy{}, e
	}
	return pol, nil
}

// effTime reads an EFF date: an RFC 3339 string or integer epoch seconds.
func effTime(path string, raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 {
		return time.Time{}, &ParseError{Path: path, Offset: -1, Msg: "missing"}
	}
	var t time.Time
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return t, &ParseError{Path: path, Offset: -1, Msg: err.Error()}
		}
		var err error
		if t, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return t, &ParseError{Path: path, Offset: -1, Msg: fmt.Sprintf("date %q is not RFC 3339", s)}
		}
	} else {
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || n < 0 || n > 253402300799 {
			return t, &ParseError{Path: path, Offset: -1, Msg: fmt.Sprintf("date %s is neither an RFC 3339 string nor epoch seconds", raw)}
		}
		t = time.Unix(n, 0)
	}
	t = t.UTC().Truncate(time.Second)
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, &ParseError{Path: path, Offset: -1, Msg: "year out of range 0001-9999"}
	}
	return t, nil
}
