package listgen

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Key algorithms for GenerateKey.
const (
	AlgECDSAP256 = "ecdsa-p256"
	AlgEd25519   = "ed25519"
)

// SSHNamespace is the SSHSIG namespace of list signatures and the principal
// of AllowedSignersLine.
const SSHNamespace = "starttls-preload"

// MaxKeyFile bounds the key files ParsePrivateKey and ParsePublicKeys
// read; a reader of a key file need read no more.
const MaxKeyFile = 64 << 10

// GenerateKey makes a signing key: "ecdsa-p256" (also for "") or "ed25519".
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case "", AlgECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEd25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("%w: algorithm %q (want %q or %q)", ErrBadKey, alg, AlgECDSAP256, AlgEd25519)
}

// checkPublic accepts the two key types lists are signed with.
func checkPublic(pub crypto.PublicKey) error {
	if p := publicProblem(pub); p != "" {
		return fmt.Errorf("%w: %s", ErrBadKey, p)
	}
	return nil
}

// securityKey stands for an SSH security key ("sk-...", FIDO) of that
// type, which lists are never signed with.
type securityKey string

// publicProblem says what is wrong with pub for checkPublic, "" if nothing.
func publicProblem(pub crypto.PublicKey) string {
	switch k := pub.(type) {
	case securityKey:
		return fmt.Sprintf("SSH security key %s (want ECDSA P-256 or Ed25519)", string(k))
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Sprintf("ECDSA curve %s (want P-256)", k.Curve.Params().Name)
		}
		return ""
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Sprintf("Ed25519 key of %d bytes", len(k))
		}
		return ""
	}
	return fmt.Sprintf("%T (want ECDSA P-256 or Ed25519)", pub)
}

// MarshalPrivateKey encodes a private key as PEM "PRIVATE KEY" (PKCS #8).
func MarshalPrivateKey(s crypto.Signer) ([]byte, error) {
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" (PKCS #8) or "EC PRIVATE KEY"
// (SEC 1, as openssl writes it) holding an ECDSA P-256 or Ed25519 key.
func ParsePrivateKey(b []byte) (crypto.Signer, error) {
	if len(b) > MaxKeyFile {
		return nil, fmt.Errorf("%w: key file larger than %d bytes", ErrBadKey, MaxKeyFile)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block", ErrBadKey)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: PEM block %q (want \"PRIVATE KEY\")", ErrBadKey, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: %T", ErrBadKey, key)
	}
	if err := checkPublic(s.Public()); err != nil {
		return nil, err
	}
	return s, nil
}

// MarshalPublicKey encodes a public key as PEM "PUBLIC KEY" (PKIX), the
// form openssl and cosign read.
func MarshalPublicKey(pub crypto.PublicKey) ([]byte, error) {
	if err := checkPublic(pub); err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// AllowedSignersLine returns the OpenSSH allowed_signers line (see
// ssh-keygen(1), ALLOWED SIGNERS) for pub, with principal and namespace
// SSHNamespace, ending in a newline:
//
//	starttls-preload namespaces="starttls-preload" ecdsa-sha2-nistp256 AAAA...
func AllowedSignersLine(pub crypto.PublicKey) (string, error) {
	if err := checkPublic(pub); err != nil {
		return "", err
	}
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	return SSHNamespace + ` namespaces="` + SSHNamespace + `" ` + strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(k)), "\n") + "\n", nil
}

// MarshalPublicKeys is MarshalPublicKey of each key, one PEM block after
// the other: a key file that ParsePublicKeys reads back in the same order.
func MarshalPublicKeys(keys []crypto.PublicKey) ([]byte, error) {
	var out []byte
	for _, k := range keys {
		b, err := MarshalPublicKey(k)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return out, nil
}

// AllowedSigners is AllowedSignersLine of each key, one line after the
// other: an allowed_signers file for ssh-keygen -Y verify and for
// ParsePublicKeys.
func AllowedSigners(keys []crypto.PublicKey) (string, error) {
	var out strings.Builder
	for _, k := range keys {
		l, err := AllowedSignersLine(k)
		if err != nil {
			return "", err
		}
		out.WriteString(l)
	}
	return out.String(), nil
}

// MaxKeys bounds the trusted keys one key file may hold: the current
// signing key, the next one and a few spares, never a key ring.
const MaxKeys = 16

// ParsePublicKeys reads the trusted keys of a key file, in file order,
// without duplicates. The file holds, in any mix:
//
//   - PEM "PUBLIC KEY" (PKIX) blocks, one or more; text between blocks
//     must be comments or blank;
//   - OpenSSH allowed_signers lines (ssh-keygen(1), ALLOWED SIGNERS):
//     principals, options (optional), key type, base64 key, comment;
//   - authorized_keys style lines: key type, base64 key, comment.
//
// Blank lines and lines starting with '#' are skipped. An allowed_signers
// line counts only when ssh-keygen -Y verify -I starttls-preload -n
// starttls-preload would consider it: its principals pattern-list must
// match SSHNamespace and its namespaces="..." option, when present, must
// match SSHNamespace too; other lines are skipped. A line that counts and
// carries cert-authority, valid-after or valid-before is refused (lists are
// signed with plain keys, and a key's validity window is expressed by
// adding and removing its line, see the rotation procedure). Every key must
// be ECDSA P-256 or Ed25519. At most MaxKeys keys, at most 64 KiB.
// Errors wrap ErrBadKey and name the line.
func ParsePublicKeys(b []byte) ([]crypto.PublicKey, error) {
	if len(b) > MaxKeyFile {
		return nil, fmt.Errorf("%w: key file larger than %d bytes", ErrBadKey, MaxKeyFile)
	}
	var (
		keys    []crypto.PublicKey
		seen    = map[string]bool{}
		skipped int
		n       int // line number
	)
	add := func(n int, pub crypto.PublicKey) error {
		if p := publicProblem(pub); p != "" {
			return fmt.Errorf("%w: line %d: %s", ErrBadKey, n, p)
		}
		k, err := ssh.NewPublicKey(pub)
		if err != nil {
			return fmt.Errorf("%w: line %d: %v", ErrBadKey, n, err)
		}
		id := string(k.Marshal())
		if seen[id] {
			return nil
		}
		if len(keys) == MaxKeys {
			return fmt.Errorf("%w: line %d: more than %d keys", ErrBadKey, n, MaxKeys)
		}
		seen[id] = true
		keys = append(keys, pub)
		return nil
	}
	rest := b
	for len(rest) > 0 {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		n++
		t := bytes.TrimSpace(line)
		switch {
		case len(t) == 0 || t[0] == '#':
			rest = after
			continue
		case bytes.HasPrefix(t, []byte("-----BEGIN ")):
			// The block runs to the first END line; pem.Decode would
			// otherwise skip a broken block and read the next one.
			start, end := n, 0
			for i := 0; ; {
				l, a, more := bytes.Cut(rest[i:], []byte("\n"))
				if bytes.HasPrefix(bytes.TrimSpace(l), []byte("-----END ")) {
					end = len(rest) - len(a)
					if !more {
						end = len(rest)
					}
					break
				}
				if !more {
					return nil, fmt.Errorf("%w: line %d: PEM block without an END line", ErrBadKey, start)
				}
				i = len(rest) - len(a)
				n++
			}
			block, tail := pem.Decode(rest[:end])
			if block == nil || len(bytes.TrimSpace(tail)) != 0 {
				return nil, fmt.Errorf("%w: line %d: malformed PEM block", ErrBadKey, start)
			}
			rest = rest[end:]
			if block.Type != "PUBLIC KEY" {
				return nil, fmt.Errorf("%w: line %d: PEM block %q (want \"PUBLIC KEY\")", ErrBadKey, start, block.Type)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %v", ErrBadKey, start, err)
			}
			if err := add(start, pub); err != nil {
				return nil, err
			}
			continue
		}
		rest = after
		pub, ok, err := parseKeyLine(string(t))
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadKey, n, err)
		}
		if !ok {
			skipped++
			continue
		}
		if err := add(n, pub); err != nil {
			return nil, err
		}
	}
	if len(keys) == 0 {
		if skipped > 0 {
			return nil, fmt.Errorf("%w: no key for principal and namespace %q (%d line(s) skipped)", ErrBadKey, SSHNamespace, skipped)
		}
		return nil, fmt.Errorf("%w: no key found", ErrBadKey)
	}
	return keys, nil
}

// parseKeyLine reads one allowed_signers or authorized_keys style line
// (trimmed, not a comment). ok is false for an allowed_signers line that
// does not apply to principal and namespace SSHNamespace.
func parseKeyLine(line string) (pub crypto.PublicKey, ok bool, err error) {
	fields, err := splitKeyLine(line)
	if err != nil {
		return nil, false, err
	}
	// authorized_keys style: "TYPE BASE64 [comment]".
	k, err := sshKey(fields, 0)
	switch {
	case err == nil:
		return k, true, nil
	case looksLikeKeyType(fields[0]):
		return nil, false, err // not a principal: say what is wrong with the key
	}
	// allowed_signers: "PRINCIPALS [OPTIONS] TYPE BASE64 [comment]".
	if len(fields) < 3 {
		return nil, false, errors.New("not a PEM block, an allowed_signers line or an SSH public key line")
	}
	principals, options := fields[0], ""
	k, err = sshKey(fields, 1)
	if err != nil {
		if len(fields) < 4 || looksLikeKeyType(fields[1]) {
			return nil, false, fmt.Errorf("allowed_signers line: %v", err)
		}
		options = fields[1]
		if k, err = sshKey(fields, 2); err != nil {
			return nil, false, fmt.Errorf("allowed_signers line: %v", err)
		}
	}
	namespaces, refused, err := parseSignerOptions(options)
	if err != nil {
		return nil, false, err
	}
	// ssh-keygen(1): the identity given with -I must match a principals
	// pattern, and the namespace a namespaces="..." pattern when present.
	if !matchPatternList(SSHNamespace, principals) {
		return nil, false, nil
	}
	if namespaces != nil && !matchPatternList(SSHNamespace, *namespaces) {
		return nil, false, nil
	}
	if refused != "" {
		return nil, false, fmt.Errorf("allowed_signers option %s is not supported (add or remove the key's line instead)", refused)
	}
	return k, true, nil
}

// sshKey parses fields[i] (key type) and fields[i+1] (base64) as an SSH
// public key and returns its crypto key.
func sshKey(fields []string, i int) (crypto.PublicKey, error) {
	if len(fields) < i+2 {
		return nil, errors.New("key type without a base64 key")
	}
	raw, err := base64.StdEncoding.DecodeString(fields[i+1])
	if err != nil {
		return nil, fmt.Errorf("key of type %.40q is not base64", fields[i])
	}
	k, err := ssh.ParsePublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("key of type %.40q: %v", fields[i], err)
	}
	if k.Type() != fields[i] {
		return nil, fmt.Errorf("key type %.40q, but the key is %s", fields[i], k.Type())
	}
	// A security key ("sk-") signs a FIDO envelope, never the message
	// itself: its key taken as a plain one would trust signatures its
	// owner never made that way. It stays a key of its own type, which
	// the lines that apply refuse and the others skip.
	if strings.HasPrefix(k.Type(), "sk-") {
		return securityKey(k.Type()), nil
	}
	ck, ok := k.(ssh.CryptoPublicKey)
	if !ok {
		return nil, fmt.Errorf("SSH key type %s", k.Type())
	}
	return ck.CryptoPublicKey(), nil
}

// looksLikeKeyType reports whether s is named like an SSH key type
// ("ssh-ed25519", "ecdsa-sha2-nistp256", "sk-ssh-ed25519@openssh.com").
func looksLikeKeyType(s string) bool {
	return strings.HasPrefix(s, "ssh-") || strings.HasPrefix(s, "ecdsa-sha2-") || strings.HasPrefix(s, "sk-")
}

// splitKeyLine splits a line at runs of spaces and tabs, except inside
// double quotes (allowed_signers options may quote spaces).
func splitKeyLine(line string) ([]string, error) {
	var fields []string
	start, quoted := -1, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			if start >= 0 {
				fields = append(fields, line[start:i])
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if start >= 0 {
		fields = append(fields, line[start:])
	}
	return fields, nil
}

// parseSignerOptions reads allowed_signers options (comma-separated,
// keywords case-insensitive): namespaces is the namespaces="..." pattern
// list (nil when absent); refused names an option that ParsePublicKeys
// does not honour, reported only if the line applies.
func parseSignerOptions(opts string) (namespaces *string, refused string, err error) {
	if opts == "" {
		return nil, "", nil
	}
	for len(opts) > 0 {
		// An option ends at the first comma outside quotes.
		end, quoted := len(opts), false
		for i := 0; i < len(opts); i++ {
			if opts[i] == '"' {
				quoted = !quoted
			} else if opts[i] == ',' && !quoted {
				end = i
				break
			}
		}
		opt := opts[:end]
		opts = strings.TrimPrefix(opts[end:], ",")
		name, value, hasValue := strings.Cut(opt, "=")
		switch strings.ToLower(name) {
		case "namespaces":
			v, ok := unquote(value)
			if !hasValue || !ok {
				return nil, "", fmt.Errorf("allowed_signers option %.60q: want namespaces=\"...\"", opt)
			}
			if namespaces != nil {
				return nil, "", errors.New("allowed_signers option namespaces given twice")
			}
			namespaces = &v
		case "cert-authority", "valid-after", "valid-before":
			if refused == "" {
				refused = strings.ToLower(name)
			}
		default:
			return nil, "", fmt.Errorf("unknown allowed_signers option %.60q", opt)
		}
	}
	return namespaces, refused, nil
}

// unquote removes the double quotes around an option value.
func unquote(s string) (string, bool) {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return "", false
	}
	s = s[1 : len(s)-1]
	return s, !strings.Contains(s, `"`)
}

// matchPatternList reports whether s matches the comma-separated pattern
// list as OpenSSH's match_pattern_list does (ssh_config(5), PATTERNS): some
// pattern matches and no negated ("!") pattern does.
func matchPatternList(s, list string) bool {
	matched := false
	for p := range strings.SplitSeq(list, ",") {
		neg := strings.HasPrefix(p, "!")
		if neg {
			p = p[1:]
		}
		if matchPattern(s, p) {
			if neg {
				return false
			}
			matched = true
		}
	}
	return matched
}

// matchPattern matches s against a pattern of literal bytes, '*' (any
// run) and '?' (any one byte).
func matchPattern(s, p string) bool {
	star, back := -1, 0 // position of the last '*' in p, and of s when it was seen
	i, j := 0, 0
	for i < len(s) {
		switch {
		case j < len(p) && (p[j] == '?' || p[j] == s[i]):
			i++
			j++
		case j < len(p) && p[j] == '*':
			star, back = j, i
			j++
		case star >= 0:
			back++
			i, j = back, star+1
		default:
			return false
		}
	}
	for j < len(p) && p[j] == '*' {
		j++
	}
	return j == len(p)
}

// Fingerprint is the key's OpenSSH SHA-256 fingerprint ("SHA256:..."), as
// `ssh-keygen -l` prints it: what logs and messages name a key by.
func Fingerprint(pub crypto.PublicKey) string {
	k, err := ssh.NewPublicKey(pub)
	if err != nil {
		return fmt.Sprintf("(%T)", pub)
	}
	return ssh.FingerprintSHA256(k)
}
