package admission

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
	"github.com/starttls-preload/starttls-preload/store"
)

// Archive keeps the signed lists; *publish.Archive is one.
type Archive interface {
	Current(ctx context.Context) (*publish.Snapshot, error)
	Add(ctx context.Context, s *publish.Snapshot) error
}

var _ Archive = (*publish.Archive)(nil)

// ListBuilder generates the signed list from the store: the listed domains
// (testing, enforce, and demoted as testing) with their MX patterns. It
// publishes a new list when the policies differ from the current list's or
// when the current list nears its expiry.
type ListBuilder struct {
	Store   store.Store
	Archive Archive
	Signer  crypto.Signer
	Now     func() time.Time
	// Validity is how long a list is valid (expires = timestamp +
	// Validity); 7 days by default.
	Validity time.Duration
	// Refresh is how long before its expiry a list is signed again
	// (Validity/2 by default), so that clients always have a fresh one.
	Refresh time.Duration
	Author  string
	Metrics *Metrics
	Log     *slog.Logger
}

// Policies returns the policies of the listed domains, by domain.
func (b *ListBuilder) Policies(ctx context.Context) (map[string]listgen.Policy, error) {
	out := make(map[string]listgen.Policy)
	after := ""
	for {
		doms, err := b.Store.ListDomains(ctx, store.Filter{States: []State{Testing, Enforce, Demoted}, After: after, Limit: 10000})
		if err != nil {
			return nil, fmt.Errorf("admission: listing domains: %w", err)
		}
		for _, d := range doms {
			mxs := make([]string, 0, len(d.MXPatterns))
			for _, p := range d.MXPatterns {
				n, err := listgen.NormalizePattern(p)
				if err != nil {
					continue // never stored by this package; skip rather than publish it
				}
				mxs = append(mxs, n)
			}
			slices.Sort(mxs)
			mxs = slices.Compact(mxs)
			if len(mxs) == 0 {
				continue
			}
			out[d.Name] = listgen.Policy{Mode: ListMode(d.State), MXs: mxs}
		}
		if len(doms) < 10000 {
			return out, nil
		}
		after = doms[len(doms)-1].Name
	}
}

func (b *ListBuilder) validity() (valid, refresh time.Duration) {
	valid = b.Validity
	if valid <= 0 {
		valid = 7 * 24 * time.Hour
	}
	refresh = b.Refresh
	if refresh <= 0 {
		refresh = valid / 2
	}
	return valid, refresh
}

// Publish generates, signs and archives a new list when the policies
// changed, the current list nears its expiry, or force is set. It returns
// the published serial (0 when nothing was published).
func (b *ListBuilder) Publish(ctx context.Context, force bool) (int64, error) {
	now := b.Now().UTC().Truncate(time.Second)
	valid, refresh := b.validity()
	pols, err := b.Policies(ctx)
	if err != nil {
		return 0, err
	}
	cur, err := b.Archive.Current(ctx)
	var curSerial int64
	switch {
	case errors.Is(err, publish.ErrNotFound):
		force = true
	case err != nil:
		return 0, fmt.Errorf("admission: reading the current list: %w", err)
	default:
		curSerial = cur.Serial
		l, err := listgen.Parse(cur.List)
		if err != nil {
			force = true // not ours to keep: replace it
		} else if !force {
			same := maps.EqualFunc(l.Policies, pols, func(a, b listgen.Policy) bool {
				return a.Mode == b.Mode && slices.Equal(a.MXs, b.MXs) && a.PolicyAlias == b.PolicyAlias
			}) && len(l.PolicyAliases) == 0
			if same && l.Expires.Sub(now) > refresh {
				return 0, nil
			}
		}
	}
	serial, err := b.Store.NextSerial(ctx)
	if err != nil {
		return 0, fmt.Errorf("admission: next serial: %w", err)
	}
	for serial <= curSerial {
		if serial, err = b.Store.NextSerial(ctx); err != nil {
			return 0, fmt.Errorf("admission: next serial: %w", err)
		}
	}
	author := b.Author
	if author == "" {
		author = "starttls-preload"
	}
	l := &listgen.List{
		Version:       listgen.FormatVersion,
		Serial:        serial,
		Timestamp:     now,
		Expires:       now.Add(valid),
		Author:        author,
		PolicyAliases: map[string]listgen.Policy{},
		Policies:      pols,
	}
	data, err := listgen.Marshal(l)
	if err != nil {
		return 0, fmt.Errorf("admission: encoding the list: %w", err)
	}
	sig, err := listgen.SignBlob(b.Signer, data)
	if err != nil {
		return 0, fmt.Errorf("admission: signing the list: %w", err)
	}
	sshsig, err := listgen.SignSSH(b.Signer, data)
	if err != nil {
		return 0, fmt.Errorf("admission: signing the list (SSHSIG): %w", err)
	}
	if err := b.Archive.Add(ctx, &publish.Snapshot{Serial: serial, List: data, Sig: sig, SSHSig: sshsig, Published: now}); err != nil {
		return 0, fmt.Errorf("admission: archiving list %d: %w", serial, err)
	}
	sum := sha256.Sum256(data)
	if err := b.Store.SaveList(ctx, store.ListRecord{Serial: serial, Timestamp: now, Expires: l.Expires, SHA256: hex.EncodeToString(sum[:]), Entries: len(pols)}); err != nil {
		return serial, fmt.Errorf("admission: saving list %d: %w", serial, err)
	}
	b.Metrics.listPublished()
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	log.InfoContext(ctx, "list published", "serial", serial, "policies", len(pols), "expires", l.Expires)
	return serial, nil
}
