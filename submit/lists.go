package submit

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
	"github.com/starttls-preload/starttls-preload/publish"
)

// ListArchive is the signed lists the door shows: the current one and
// every earlier one by serial. *publish.Archive is one.
type ListArchive interface {
	Current(ctx context.Context) (*publish.Snapshot, error)
	BySerial(ctx context.Context, serial int64) (*publish.Snapshot, error)
	Serials(ctx context.Context) ([]int64, error)
}

var _ ListArchive = (*publish.Archive)(nil)

// ListEntry is one domain of the current list, as /list shows it.
type ListEntry struct {
	Domain string   `json:"domain"`
	Mode   string   `json:"mode"`
	MXs    []string `json:"mxs"`
}

// currentList is the current list, parsed once per serial.
type currentList struct {
	Serial    int64
	Timestamp time.Time
	Expires   time.Time
	Entries   []ListEntry // sorted by domain
	byName    map[string]int
}

// StatsPoint is the list size by mode for one serial.
type StatsPoint struct {
	Serial    int64     `json:"serial"`
	Timestamp time.Time `json:"timestamp"`
	Testing   int       `json:"testing"`
	Enforce   int       `json:"enforce"`
}

// maxStatsPoints bounds the lists read for the stats chart: at most this
// many serials, spread evenly from the first to the latest.
const maxStatsPoints = 120

type listCache struct {
	a ListArchive

	mu     sync.Mutex
	cur    *currentList
	points map[int64]StatsPoint // per serial; a serial never changes

	// statsMu makes concurrent first readers of the statistics wait for
	// one reading of the archive instead of each reading every list;
	// it guards statsOf and stats, the statistics as of the current list
	// statsOf (0: none yet), which change only when a list is published.
	statsMu  sync.Mutex
	statsOf  int64
	statsOut []StatsPoint
}

func newListCache(a ListArchive) *listCache {
	return &listCache{a: a, points: map[int64]StatsPoint{}}
}

// current returns the current list, or nil when there is none (no archive
// or nothing published yet).
func (lc *listCache) current(ctx context.Context) (*currentList, error) {
	if lc.a == nil {
		return nil, nil
	}
	snap, err := lc.a.Current(ctx)
	if errors.Is(err, publish.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.cur != nil && lc.cur.Serial == snap.Serial {
		return lc.cur, nil
	}
	l, err := listgen.Parse(snap.List)
	if err != nil {
		return nil, err
	}
	cl := &currentList{Serial: l.Serial, Timestamp: l.Timestamp, Expires: l.Expires, Entries: make([]ListEntry, 0, len(l.Policies)), byName: make(map[string]int, len(l.Policies))}
	for name := range l.Policies {
		p, ok := l.Resolve(name)
		if !ok {
			continue
		}
		mxs := p.MXs
		if mxs == nil {
			mxs = []string{}
		}
		cl.Entries = append(cl.Entries, ListEntry{Domain: name, Mode: p.Mode, MXs: mxs})
	}
	sort.Slice(cl.Entries, func(i, j int) bool { return cl.Entries[i].Domain < cl.Entries[j].Domain })
	for i, e := range cl.Entries {
		cl.byName[e.Domain] = i
	}
	lc.cur = cl
	lc.points[cl.Serial] = countModes(l)
	return cl, nil
}

func countModes(l *listgen.List) StatsPoint {
	p := StatsPoint{Serial: l.Serial, Timestamp: l.Timestamp}
	for name := range l.Policies {
		pol, ok := l.Resolve(name)
		switch {
		case !ok:
		case pol.Mode == "enforce":
			p.Enforce++
		default:
			p.Testing++
		}
	}
	return p
}

// search returns the entries whose domain contains q (all when q is
// empty), at most limit after the name after.
func (cl *currentList) search(q, after string, limit int) (out []ListEntry, more bool) {
	out = []ListEntry{}
	if cl == nil {
		return out, false
	}
	start := sort.Search(len(cl.Entries), func(i int) bool { return cl.Entries[i].Domain > after })
	for _, e := range cl.Entries[start:] {
		if q != "" && !strings.Contains(e.Domain, q) {
			continue
		}
		if len(out) == limit {
			return out, true
		}
		out = append(out, e)
	}
	return out, false
}

// lookup returns a domain's entry in the list.
func (cl *currentList) lookup(domain string) (ListEntry, bool) {
	if cl == nil {
		return ListEntry{}, false
	}
	i, ok := cl.byName[domain]
	if !ok {
		return ListEntry{}, false
	}
	return cl.Entries[i], true
}

// stats returns the list size by mode for up to maxStatsPoints serials,
// oldest first. Lists that cannot be read are skipped. The archive is read
// once per current list (a directory of thousands of serials after a
// year of hourly lists), not per request.
func (lc *listCache) stats(ctx context.Context) ([]StatsPoint, error) {
	out := []StatsPoint{}
	if lc.a == nil {
		return out, nil
	}
	cur, err := lc.a.Current(ctx)
	if errors.Is(err, publish.ErrNotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	lc.statsMu.Lock()
	defer lc.statsMu.Unlock()
	if lc.statsOf == cur.Serial {
		return slices.Clone(lc.statsOut), nil
	}
	serials, err := lc.a.Serials(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(serials)
	if n := len(serials); n > maxStatsPoints {
		picked := make([]int64, 0, maxStatsPoints)
		for i := range maxStatsPoints {
			picked = append(picked, serials[i*(n-1)/(maxStatsPoints-1)])
		}
		serials = slices.Compact(picked)
	}
	for _, serial := range serials {
		lc.mu.Lock()
		p, ok := lc.points[serial]
		lc.mu.Unlock()
		if !ok {
			snap, err := lc.a.BySerial(ctx, serial)
			if err != nil {
				continue
			}
			l, err := listgen.Parse(snap.List)
			if err != nil {
				continue
			}
			p = countModes(l)
			lc.mu.Lock()
			lc.points[serial] = p
			lc.mu.Unlock()
		}
		out = append(out, p)
	}
	lc.statsOf, lc.statsOut = cur.Serial, slices.Clone(out)
	return out, nil
}
