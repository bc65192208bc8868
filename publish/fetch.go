package publish

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// Defaults of FetchOptions.
const (
	DefaultMaxSize = listgen.MaxSize
	DefaultTimeout = 2 * time.Minute
)

// FetchOptions configures Fetch.
type FetchOptions struct {
	// URL is the location of policy-list.json; its signature is URL+".sig".
	URL string
	// PublicKeys are the pinned signing keys (listgen.ParsePublicKeys reads
	// them from a key file): the list verifies when its signature is by one
	// of them, so that the service can switch to a key announced before.
	// They are never fetched from the server.
	PublicKeys []crypto.PublicKey
	// StateDir keeps the state (state.json, expiry.json), the kept copy
	// of the installed list, the lock and the download in progress.
	StateDir string

	// PostfixMap is the Postfix smtp_tls_policy_maps table to write ("" = none).
	PostfixMap string
	// Postmap compiles PostfixMap with postmap into this table type
	// ("hash", "btree", "lmdb" or "cdb"); "" leaves a texthash: table.
	Postmap string
	// PostmapCommand runs postmap (default {"postmap"}); the "TYPE:FILE"
	// argument is appended.
	PostmapCommand []string
	// EximFile is the lsearch file read by the Exim transport ("" = none).
	EximFile string
	// Reload is a shell command run after the installed files changed.
	Reload string
	// EarlyAdopter treats testing entries as enforced.
	EarlyAdopter bool
	// CAFile is the CA bundle named on each line of the Exim file ("" = the
	// system's); Postfix takes smtp_tls_CAfile from main.cf instead.
	CAFile string

	// Jitter waits a random time in [0, Jitter) before fetching.
	Jitter time.Duration
	// Timeout bounds the downloads (default DefaultTimeout).
	Timeout time.Duration
	// CommandTimeout bounds each run of postmap and of the reload command
	// (default DefaultCommandTimeout): when it passes, the command and
	// every process it started are killed.
	CommandTimeout time.Duration
	// MaxSize bounds the list's size (default DefaultMaxSize). The list is
	// downloaded into a temporary file in StateDir, so memory follows the
	// size of the list, not what a server sends.
	MaxSize int64
	// Client is the HTTP client (default: one with connection timeouts).
	Client *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// FetchResult says what a Fetch did.
type FetchResult struct {
	Serial      int64     // serial of the installed list
	Expires     time.Time // its expiry
	NotModified bool      // the server had nothing new
	Changed     bool      // installed files were rewritten
	Reloaded    bool      // the reload command ran
	Withdrawn   bool      // enforcement is withdrawn (the list expired)
	Files       []string  // files rewritten
	// SignedBy is the pinned key whose signature verified in this run; nil
	// when no list was verified (nothing new, and the installed files
	// intact).
	SignedBy crypto.PublicKey
}

// State file names inside StateDir.
const (
	stateFile  = "state.json"
	expiryFile = "expiry.json" // validity of the installed list, kept apart
	lockName   = "lock"
)

// maxValidator bounds an ETag or Last-Modified kept from a response: a
// longer one is not stored (nor sent back).
const maxValidator = 256

// fetchState is what Fetch remembers between runs (StateDir/state.json).
type fetchState struct {
	Serial       int64                 `json:"serial"`
	ListSHA256   string                `json:"list_sha256"`
	Expires      time.Time             `json:"expires"`
	ETag         string                `json:"etag,omitempty"`
	LastModified string                `json:"last_modified,omitempty"`
	Options      string                `json:"options"`
	Withdrawn    bool                  `json:"withdrawn,omitempty"`
	SignedBy     string                `json:"signed_by,omitempty"` // fingerprint of the key that signed the installed list
	Enforcing    bool                  `json:"enforcing,omitempty"` // the installed files enforce at least one domain
	ReloadNeeded bool                  `json:"reload_needed,omitempty"`
	Installed    map[string]installRec `json:"installed"`
}

// installRec identifies an installed file cheaply, to notice when someone
// else changed or removed it.
type installRec struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime_ns"`
}

// Fetch downloads the list, verifies its signature with the pinned key,
// refuses a rollback or an expired list, renders and installs the Postfix
// and Exim files atomically (postmap first, on the temporary copy) and runs
// the reload command when something changed. On any error the files
// installed before stay as they were, except for an expired list: then the
// empty policy is installed (enforcement withdrawn) and ErrExpired returned.
//
// The serial of the installed list bounds the next one only while the key
// that signed it is pinned: after the operator unpins that key, the list
// is downloaded in full again and any list by a pinned key replaces it,
// whatever its serial.
//
// The server is not trusted (Fetch typically runs as root): the list is
// downloaded into a temporary file in StateDir, at most MaxSize bytes, and
// parsed only after its signature verifies; a list with serial 0, an
// expiry not after its timestamp or a validity over MaxValidity is
// refused; only bounded, well-formed validators are kept (RFC 9110
// §8.8.2.2, §8.8.3); server text in errors is cleaned and cut short; an
// https URL never follows a redirect to http. StateDir must belong to the
// running user and not be writable by group or others; temporary files of
// an interrupted run are removed; installed files keep their owner, group
// and mode; postmap and Reload are killed after CommandTimeout or when ctx
// is cancelled.
func Fetch(ctx context.Context, o FetchOptions) (*FetchResult, error) {
	ownClient := o.Client == nil
	if err := o.check(); err != nil {
		return nil, err
	}
	if ownClient {
		defer o.Client.CloseIdleConnections()
	}
	if o.Jitter > 0 {
		t := time.NewTimer(rand.N(o.Jitter))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	if err := checkStateDir(o.StateDir); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	unlock, err := lockFile(filepath.Join(o.StateDir, lockName))
	if err != nil {
		if errors.Is(err, ErrLocked) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	defer unlock()
	f := &fetcher{o: o}
	f.removeStaleTemps()
	if err := f.loadState(); err != nil {
		return f.unreadableState(ctx, err)
	}
	return f.run(ctx)
}

func (o *FetchOptions) check() error {
	switch {
	case o.URL == "":
		return errors.New("publish: no list URL")
	case len(o.PublicKeys) == 0:
		return errors.New("publish: no pinned public key")
	case len(o.PublicKeys) > listgen.MaxKeys:
		return fmt.Errorf("publish: %d pinned public keys, at most %d", len(o.PublicKeys), listgen.MaxKeys)
	case o.StateDir == "":
		return errors.New("publish: no state directory")
	case o.PostfixMap == "" && o.EximFile == "":
		return errors.New("publish: nothing to install: give a Postfix map or an Exim file")
	case o.Postmap != "" && o.PostfixMap == "":
		return errors.New("publish: postmap without a Postfix map")
	}
	if _, ok := postmapSuffix[o.Postmap]; !ok {
		return fmt.Errorf("publish: unsupported postmap table type %q (hash, btree, lmdb or cdb)", o.Postmap)
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if len(o.PostmapCommand) == 0 {
		o.PostmapCommand = []string{"postmap"}
	}
	if o.Client == nil {
		o.Client = defaultClient()
	}
	o.Client = noDowngrade(o.Client)
	return nil
}

// errPlainHTTP refuses a redirect that would leave https.
var errPlainHTTP = errors.New("publish: refusing a redirect from https to plain http")

// noDowngrade returns a copy of c (sharing its transport) that never
// follows a redirect from an https URL to a plain http one: whoever asked
// for https wants the list's privacy kept to the end (the signature is
// checked either way).
func noDowngrade(c *http.Client) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return errPlainHTTP
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("publish: stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// postmapSuffix is the file postmap writes beside FILE for each table type.
var postmapSuffix = map[string]string{"": "", "hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}

func defaultClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
		// A list server's answer head is small: one of megabytes is
		// refused by the transport (the default allows 10 MB).
		MaxResponseHeaderBytes: 1 << 20,
	}}
}

// optionsKey changes whenever the rendered files would.
func (o *FetchOptions) optionsKey() string {
	return fmt.Sprintf("postfix=%q postmap=%q exim=%q early=%t ca=%q", o.PostfixMap, o.Postmap, o.EximFile, o.EarlyAdopter, o.CAFile)
}

type fetcher struct {
	o        FetchOptions
	st       fetchState
	saved    []byte     // state.json as last read or written
	expiry   *expiryRec // expiry.json as last read or written
	pending  *pendingList
	signedBy crypto.PublicKey // the pinned key that verified a list in this run
}

// keys are the pinned keys, the one that signed the installed list first:
// a FILE.sig is tried with the keys in order, and each Ed25519 key tried
// costs a pass over the list, so after a switch of keys only the first new
// list pays for trying the old key first.
func (f *fetcher) keys() []crypto.PublicKey {
	for i, k := range f.o.PublicKeys {
		if i > 0 && f.st.SignedBy != "" && listgen.Fingerprint(k) == f.st.SignedBy {
			return slices.Concat([]crypto.PublicKey{k}, f.o.PublicKeys[:i], f.o.PublicKeys[i+1:])
		}
	}
	return f.o.PublicKeys
}

func (f *fetcher) path(name string) string { return filepath.Join(f.o.StateDir, name) }

// removeStaleTemps removes the temporary files a run that was killed left
// beside the files Fetch writes (the lock is held: no other run is writing
// them now).
func (f *fetcher) removeStaleTemps() {
	targets := []string{f.path(stateFile), f.path(expiryFile), f.path(ListFile), f.path(SigFile)}
	for _, p := range []string{f.o.PostfixMap, f.o.EximFile} {
		if p != "" {
			targets = append(targets, p)
		}
	}
	for _, p := range targets {
		for _, name := range staleTemps(p) {
			if err := os.Remove(name); err == nil {
				slog.Info("removed a temporary file left by an interrupted run", "file", name)
			}
		}
	}
}

// expiryRec is what expiry.json keeps: the identity and validity of the
// installed list, taken from the verified list only and written beside
// state.json, so that an expired list is withdrawn even when state.json
// cannot be read (damaged, or grown by a bug).
type expiryRec struct {
	Serial     int64     `json:"serial"`
	ListSHA256 string    `json:"list_sha256"`
	Expires    time.Time `json:"expires"`
	SignedBy   string    `json:"signed_by,omitempty"`
}

func (f *fetcher) loadState() error {
	f.expiry = f.loadExpiry()
	b, err := ReadFileLimit(f.path(stateFile), 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = json.Unmarshal(b, &f.st)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrStateDir, f.path(stateFile), err)
	}
	// Validators were stored from responses: keep only what this client
	// would store now (a state written by an older one may hold anything).
	f.st.ETag = validETag(f.st.ETag)
	if t, err := http.ParseTime(f.st.LastModified); err != nil || t.UTC().Format(http.TimeFormat) != f.st.LastModified {
		f.st.LastModified = ""
	}
	// Of two records of the same list, the earlier expiry counts.
	if e := f.expiry; e != nil && e.ListSHA256 == f.st.ListSHA256 && e.Expires.Before(f.st.Expires) {
		f.st.Expires = e.Expires
	}
	f.saved, _ = f.marshalState()
	return nil
}

// loadExpiry reads expiry.json (nil if it is missing or unreadable).
func (f *fetcher) loadExpiry() *expiryRec {
	b, err := ReadFileLimit(f.path(expiryFile), 4<<10)
	if err != nil {
		return nil
	}
	var e expiryRec
	if json.Unmarshal(b, &e) != nil || e.ListSHA256 == "" {
		return nil
	}
	return &e
}

// unreadableState handles a state.json that cannot be read (err): nothing
// is installed, except that an installed list that expired (by
// expiry.json) is withdrawn, and a fresh state.json written for it.
func (f *fetcher) unreadableState(ctx context.Context, err error) (*FetchResult, error) {
	e := f.expiry
	if e == nil {
		// No record (a state written before it was kept): the kept copy
		// of the installed list, if it verifies, says.
		e = f.keptExpiry()
	}
	if e == nil || f.o.Now().Before(e.Expires) {
		return nil, err
	}
	slog.Warn("the state file cannot be read, but the installed list has expired: withdrawing it", "serial", e.Serial, "err", err)
	f.st = fetchState{Serial: e.Serial, ListSHA256: e.ListSHA256, Expires: e.Expires, SignedBy: e.SignedBy}
	res, werr := f.withdraw(ctx, f.expiredReason(), f.expiredErr())
	return res, errors.Join(err, werr)
}

// keptExpiry reads the expiry of the list kept in the state directory
// from the list itself, when it verifies with a pinned key (nil if not).
func (f *fetcher) keptExpiry() *expiryRec {
	list, err := ReadFileLimit(f.path(ListFile), f.o.MaxSize)
	if err != nil {
		return nil
	}
	sig, err := ReadFileLimit(f.path(SigFile), maxSigSize)
	if err != nil {
		return nil
	}
	by, err := listgen.Verify(f.o.PublicKeys, list, bytes.TrimSpace(sig), nil)
	if err != nil {
		return nil
	}
	l, err := listgen.Parse(list)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(list)
	return &expiryRec{Serial: l.Serial, ListSHA256: hex.EncodeToString(sum[:]), Expires: l.Expires, SignedBy: listgen.Fingerprint(by)}
}

// validETag returns etag when it is one to store and send back in
// If-None-Match: at most maxValidator bytes of the entity-tag grammar of
// RFC 9110 §8.8.3 (entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc =
// %x21 / %x23-7E, without obs-text); "" otherwise.
func validETag(etag string) string {
	if len(etag) > maxValidator {
		return ""
	}
	opaque := strings.TrimPrefix(etag, "W/")
	if len(opaque) < 2 || opaque[0] != '"' || opaque[len(opaque)-1] != '"' {
		return ""
	}
	for _, c := range []byte(opaque[1 : len(opaque)-1]) {
		if c < 0x21 || c == '"' || c > 0x7e {
			return ""
		}
	}
	return etag
}

// strongLastModified returns the response's Last-Modified, formatted
// anew, when it can serve as a validator: RFC 9110 §8.8.2.2, a
// Last-Modified is weak unless at least one second before the response's
// Date (a file replaced within that second keeps the same date, and
// If-Modified-Since would hide the new one). "" otherwise, and when either
// date is missing or malformed.
func strongLastModified(h http.Header) string {
	lm, err := http.ParseTime(h.Get("Last-Modified"))
	if err != nil {
		return ""
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil || date.Sub(lm) < time.Second {
		return ""
	}
	return lm.UTC().Format(http.TimeFormat)
}

// keepValidators stores the validators of a response for the next
// conditional request, each only if it is bounded and strong enough.
func (f *fetcher) keepValidators(h http.Header) {
	f.st.ETag, f.st.LastModified = validETag(h.Get("ETag")), strongLastModified(h)
}

func (f *fetcher) marshalState() ([]byte, error) {
	b, err := json.MarshalIndent(&f.st, "", "  ")
	return append(b, '\n'), err
}

// saveState writes the state when it changed.
func (f *fetcher) saveState() error {
	b, err := f.marshalState()
	if err != nil {
		return err
	}
	if err := f.saveExpiry(); err != nil {
		return err
	}
	if bytes.Equal(b, f.saved) {
		return nil
	}
	if err := writeFileAtomic(f.path(stateFile), b, 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	f.saved = b
	return nil
}

// saveExpiry writes expiry.json when the installed list changed.
func (f *fetcher) saveExpiry() error {
	if f.st.ListSHA256 == "" {
		return nil
	}
	e := expiryRec{Serial: f.st.Serial, ListSHA256: f.st.ListSHA256, Expires: f.st.Expires, SignedBy: f.st.SignedBy}
	if o := f.expiry; o != nil && o.Serial == e.Serial && o.ListSHA256 == e.ListSHA256 && o.Expires.Equal(e.Expires) && o.SignedBy == e.SignedBy {
		return nil
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(f.path(expiryFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	f.expiry = &e
	return nil
}

func (f *fetcher) run(ctx context.Context) (*FetchResult, error) {
	res, err := f.fetch(ctx)
	if err == nil || errors.Is(err, ErrExpired) || f.st.Serial == 0 {
		return res, err
	}
	var reason string
	var why error // what the withdrawal itself reports
	switch {
	case f.expired():
		// Whatever went wrong, an installed list past its expiry is never
		// enforced: withdraw it and say so.
		reason, why = f.expiredReason(), f.expiredErr()
	case f.signerUnpinned():
		// The operator no longer trusts the key that signed the installed
		// list (dropped, perhaps compromised): its policies are not kept in
		// force while no list by a pinned key can be had.
		reason = fmt.Sprintf("policy list serial %d was signed by key %s, which is no longer pinned",
			f.st.Serial, f.st.SignedBy)
	default:
		return res, err
	}
	res, werr := f.withdraw(ctx, reason, why)
	return res, errors.Join(err, werr)
}

// signerUnpinned reports whether the installed list was signed by a key
// that is no longer pinned (the operator dropped it, e.g. as compromised):
// such a list is no anchor for rollback and no reason to skip a download.
// A state without signed_by (written before it was kept) is trusted.
func (f *fetcher) signerUnpinned() bool {
	if f.st.Serial == 0 || f.st.SignedBy == "" {
		return false
	}
	for _, k := range f.o.PublicKeys {
		if listgen.Fingerprint(k) == f.st.SignedBy {
			return false
		}
	}
	return true
}

func (f *fetcher) fetch(ctx context.Context) (*FetchResult, error) {
	unpinned := f.signerUnpinned()
	if unpinned {
		slog.Warn("the installed list was signed by a key that is no longer pinned: downloading the list again, its serial is no rollback anchor",
			"serial", f.st.Serial, "key", f.st.SignedBy)
	}
	var cond http.Header
	if f.st.Serial > 0 && !unpinned {
		cond = http.Header{}
		if f.st.ETag != "" {
			cond.Set("If-None-Match", f.st.ETag)
		} else if f.st.LastModified != "" {
			cond.Set("If-Modified-Since", f.st.LastModified)
		}
	}
	dctx, cancel := context.WithTimeout(ctx, f.o.Timeout)
	defer cancel()
	start := time.Now()
	// The list goes to a temporary file beside the kept copy (memory does
	// not follow what a server sends), then is read back at its size.
	dl, hdr, err := f.getFile(dctx, f.o.URL, cond, f.o.MaxSize, f.path(ListFile))
	if err != nil {
		return nil, err
	}
	if dl == nil { // 304 Not Modified
		return f.unchanged(ctx)
	}
	defer dl.drop() // unless it became the pending kept copy
	list := dl.data
	slog.Debug("downloaded", "url", f.o.URL, "bytes", len(list), "took", time.Since(start))
	if looksLikeHTML(list) {
		return nil, fmt.Errorf("%w: %s returned an HTML page", ErrNotAList, f.o.URL)
	}
	sig, err := f.get(dctx, f.o.URL+".sig", maxSigSize)
	if err != nil {
		return nil, err
	}
	// The signature is checked before the list is parsed: unsigned bytes
	// are never parsed (nor cost the memory of a parsed list).
	signedBy, err := listgen.Verify(f.keys(), list, sig, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	l, err := listgen.Parse(list)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadList, err)
	}
	if err := checkValidity(l); err != nil {
		return nil, err
	}
	f.signedBy = signedBy
	slog.Debug("verified and parsed", "serial", l.Serial, "domains", len(l.Policies), "key", listgen.Fingerprint(signedBy), "took", time.Since(start))
	sum := sha256.Sum256(list)
	hash := hex.EncodeToString(sum[:])
	switch {
	case f.st.Serial > 0 && !unpinned && l.Serial < f.st.Serial:
		return nil, fmt.Errorf("%w: got serial %d, installed %d", ErrRollback, l.Serial, f.st.Serial)
	case f.st.Serial > 0 && !unpinned && l.Serial == f.st.Serial && hash != f.st.ListSHA256:
		return nil, fmt.Errorf("%w: serial %d", ErrSameSerial, l.Serial)
	case l.Serial == f.st.Serial && (!unpinned || hash == f.st.ListSHA256):
		// The same list again (the ETag was not kept or changed form): keep
		// this copy too, in case the kept one was damaged, and its signer.
		f.keepValidators(hdr)
		f.st.SignedBy = listgen.Fingerprint(signedBy)
		f.pending = dl.stage(sig)
		defer f.dropPending()
		return f.unchangedList(ctx, l)
	case !f.o.Now().Before(l.Expires) && f.st.Serial > 0 && !unpinned && !f.expired():
		return nil, fmt.Errorf("%w (downloaded serial %d, at %s); keeping installed serial %d, valid until %s",
			ErrExpired, l.Serial, stamp(l.Expires), f.st.Serial, stamp(f.st.Expires))
	}
	prev := f.st
	// The copy kept in the state dir is synced while the list renders.
	f.pending = dl.stage(sig)
	defer f.dropPending()
	f.st.Serial, f.st.ListSHA256, f.st.Expires = l.Serial, hash, l.Expires
	f.st.SignedBy = listgen.Fingerprint(signedBy)
	f.keepValidators(hdr)
	var res *FetchResult
	if f.expired() {
		res, err = f.withdraw(ctx, f.expiredReason(), f.expiredErr())
	} else {
		res, err = f.install(ctx, l)
	}
	if res == nil || !res.Changed && err != nil && !errors.Is(err, ErrExpired) {
		f.st = prev // nothing was installed
	}
	return res, err
}

// pendingList is a verified list on its way into the state directory:
// its temporary file synced in the background, renamed by commit.
type pendingList struct {
	sig  []byte
	done chan struct{}
	tmp  string
	err  error
}

// download is a list downloaded into a temporary file (tmp, still open)
// and read back (data).
type download struct {
	file *os.File
	data []byte
}

// stage hands the downloaded file over as the pending kept copy, with its
// signature sig.
func (d *download) stage(sig []byte) *pendingList {
	file := d.file
	d.file = nil
	p := &pendingList{sig: sig, tmp: file.Name(), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		p.err = file.Sync()
		if err := file.Close(); p.err == nil {
			p.err = err
		}
	}()
	return p
}

// drop removes the downloaded file unless stage took it.
func (d *download) drop() {
	if d.file != nil {
		d.file.Close()
		os.Remove(d.file.Name())
		d.file = nil
	}
}

// commitPending keeps the pending list as the last good one.
func (f *fetcher) commitPending() error {
	p := f.pending
	if p == nil {
		return nil
	}
	<-p.done
	f.pending = nil
	if p.err != nil {
		return fmt.Errorf("%w: %w", ErrStateDir, p.err)
	}
	if err := writeFileAtomic(f.path(SigFile), p.sig, 0o600); err != nil {
		os.Remove(p.tmp)
		return fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	if err := renameTemp(p.tmp, f.path(ListFile)); err != nil {
		return fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	if err := syncDir(f.o.StateDir); err != nil {
		return fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	return nil
}

// dropPending removes a pending list that was not committed.
func (f *fetcher) dropPending() {
	if p := f.pending; p != nil {
		<-p.done
		os.Remove(p.tmp)
		f.pending = nil
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// MaxValidity is the longest validity (from timestamp to expires) of a list
// Fetch accepts: a year, leap or not. A signed list valid for longer would
// stay in force long after its signer could have corrected it.
const MaxValidity = 366 * 24 * time.Hour

// checkValidity refuses a verified list that no publisher of ours signs: a
// serial of 0 (the archive numbers lists from 1), an expiry not after the
// timestamp, or a validity longer than MaxValidity.
func checkValidity(l *listgen.List) error {
	switch valid := l.Expires.Sub(l.Timestamp); {
	case l.Serial == 0:
		return fmt.Errorf("%w: serial 0 is not a published list (published serials start at 1)", ErrRefusedList)
	case valid <= 0:
		return fmt.Errorf("%w: serial %d expires (%s) not after its timestamp (%s)",
			ErrRefusedList, l.Serial, stamp(l.Expires), stamp(l.Timestamp))
	case valid > MaxValidity:
		return fmt.Errorf("%w: serial %d is valid for %d days (%s to %s), longer than %d days",
			ErrRefusedList, l.Serial, valid/(24*time.Hour), stamp(l.Timestamp), stamp(l.Expires), MaxValidity/(24*time.Hour))
	}
	return nil
}

// unchanged handles a list that did not change on the server: it still
// withdraws enforcement when the list expired meanwhile, repairs installed
// files someone else changed, re-renders when the options changed, and
// retries a reload that failed last time.
func (f *fetcher) unchanged(ctx context.Context) (*FetchResult, error) {
	return f.unchangedList(ctx, nil)
}

// unchangedList is unchanged with the list at hand (nil: read the kept copy
// if it is needed).
func (f *fetcher) unchangedList(ctx context.Context, l *listgen.List) (*FetchResult, error) {
	intact := f.st.Options == f.o.optionsKey() && f.installedIntact()
	if f.expired() {
		if !intact || !f.st.Withdrawn {
			return f.withdraw(ctx, f.expiredReason(), f.expiredErr())
		}
		res := &FetchResult{Serial: f.st.Serial, Expires: f.st.Expires, NotModified: true, Withdrawn: true}
		return f.finish(ctx, res, f.expiredErr())
	}
	if intact && !f.st.Withdrawn {
		if err := f.commitPending(); err != nil {
			return nil, err
		}
		res := &FetchResult{Serial: f.st.Serial, Expires: f.st.Expires, NotModified: true}
		return f.finish(ctx, res, nil)
	}
	if l == nil {
		var err error
		if l, err = f.loadList(); err != nil {
			// Download the whole list next time instead.
			f.st.ETag, f.st.LastModified = "", ""
			f.saveState()
			return nil, err
		}
	}
	res, err := f.install(ctx, l)
	if res != nil {
		res.NotModified = true
	}
	return res, err
}

func (f *fetcher) expired() bool { return !f.o.Now().Before(f.st.Expires) }

func (f *fetcher) expiredErr() error {
	return fmt.Errorf("%w (serial %d, at %s): TLS enforcement withdrawn until a newer list is installed",
		ErrExpired, f.st.Serial, stamp(f.st.Expires))
}

// install renders the valid list l and installs it.
func (f *fetcher) install(ctx context.Context, l *listgen.List) (*FetchResult, error) {
	ro := listgen.RenderOptions{EarlyAdopter: f.o.EarlyAdopter, CAFile: f.o.CAFile, Now: f.o.Now()}
	start := time.Now()
	var pf, ex []byte
	switch {
	case f.o.PostfixMap != "" && f.o.EximFile != "":
		pf, ex = listgen.Render(l, ro) // sorts once, writes both at once
	case f.o.PostfixMap != "":
		pf = listgen.RenderPostfix(l, ro)
	default:
		ex = listgen.RenderExim(l, ro)
	}
	slog.Debug("rendered", "serial", l.Serial, "took", time.Since(start))
	empty := f.o.PostfixMap != "" && !hasEntry(pf) || f.o.EximFile != "" && !hasEntry(ex)
	switch {
	case empty && f.st.Enforcing:
		// A list that suddenly enforces nothing is more likely a mistake at
		// the source than every domain leaving at once: keep the installed
		// policy and make the operator look.
		return nil, fmt.Errorf("%w (serial %d); to accept it, remove %s and run again",
			ErrEmptyList, l.Serial, f.path(stateFile))
	case empty:
		// A young list has only testing entries: install it, so that the
		// host is ready, and say why nothing is enforced.
		slog.Warn("the list enforces TLS for no domain yet", "serial", l.Serial, "policies", len(l.Policies),
			"hint", "testing entries are enforced only with --early-adopter")
	}
	f.st.Enforcing = !empty
	return f.put(ctx, pf, ex, false, nil)
}

// expiredReason is the comment of the policy installed when the list of
// the state has expired.
func (f *fetcher) expiredReason() string {
	// The empty policy's own text says that nothing is enforced until a
	// valid list is installed.
	return fmt.Sprintf("policy list serial %d expired at %s", f.st.Serial, stamp(f.st.Expires))
}

// withdraw installs the empty policy, saying why in reason (its comment);
// why is the error the withdrawal reports (nil: none of its own).
func (f *fetcher) withdraw(ctx context.Context, reason string, why error) (*FetchResult, error) {
	pf, ex := listgen.EmptyPolicy(reason)
	f.st.Enforcing = false
	return f.put(ctx, pf, ex, true, why)
}

// put installs the rendered files and records them in the state. A
// withdrawal reports why (nil: nothing of its own) once it is in place.
func (f *fetcher) put(ctx context.Context, pf, ex []byte, withdrawn bool, why error) (*FetchResult, error) {
	res := &FetchResult{Serial: f.st.Serial, Expires: f.st.Expires, Withdrawn: withdrawn}
	var outs []output
	if f.o.PostfixMap != "" {
		outs = append(outs, output{path: f.o.PostfixMap, data: pf, postmap: f.o.Postmap})
	}
	if f.o.EximFile != "" {
		outs = append(outs, output{path: f.o.EximFile, data: ex})
	}
	files, err := f.writeOutputs(ctx, outs)
	err = joinWhy(why, err)
	res.Files = files
	res.Changed = len(files) > 0
	if res.Changed && f.o.Reload != "" {
		f.st.ReloadNeeded = true
	}
	if err != nil {
		if res.Changed {
			// Some files were replaced: keep the list, and force a fresh
			// install (and the reload) next time.
			f.st.Installed = nil
			if f.commitPending() == nil {
				f.saveState()
			}
		}
		return res, err
	}
	if err := f.commitPending(); err != nil {
		return res, joinWhy(why, err)
	}
	f.st.Withdrawn = withdrawn
	f.st.Options = f.o.optionsKey()
	f.st.Installed = map[string]installRec{}
	for _, o := range outs {
		for _, p := range o.installedPaths() {
			if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
				f.st.Installed[p] = installRec{Size: st.Size(), ModTime: st.ModTime().UnixNano()}
			}
		}
	}
	return f.finish(ctx, res, why)
}

// finish saves the state and runs the reload command if one is due.
func (f *fetcher) finish(ctx context.Context, res *FetchResult, expired error) (*FetchResult, error) {
	res.SignedBy = f.signedBy
	if err := f.saveState(); err != nil {
		return res, joinWhy(expired, err)
	}
	if f.st.ReloadNeeded {
		if err := runReload(ctx, f.o.CommandTimeout, f.o.Reload); err != nil {
			return res, joinWhy(expired, err)
		}
		res.Reloaded = true
		f.st.ReloadNeeded = false
		if err := f.saveState(); err != nil {
			return res, joinWhy(expired, err)
		}
	}
	return res, expired
}

// joinWhy joins the reason of a withdrawal (nil: none) to an error of its
// own (nil: none).
func joinWhy(why, err error) error {
	if err == nil || why == nil {
		return err
	}
	return errors.Join(why, err)
}

// installedIntact reports whether every installed file is as Fetch left it.
func (f *fetcher) installedIntact() bool {
	if len(f.st.Installed) == 0 {
		return false
	}
	for p, rec := range f.st.Installed {
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() || st.Size() != rec.Size || st.ModTime().UnixNano() != rec.ModTime {
			return false
		}
	}
	return true
}

// loadList reads back and verifies again the list kept in the state dir.
func (f *fetcher) loadList() (*listgen.List, error) {
	list, err := ReadFileLimit(f.path(ListFile), f.o.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	sig, err := ReadFileLimit(f.path(SigFile), maxSigSize)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	l, signedBy, err := listgen.VerifyParse(f.keys(), list, bytes.TrimSpace(sig), nil)
	switch {
	case errors.Is(err, listgen.ErrBadSignature) || errors.Is(err, listgen.ErrBadKey):
		return nil, fmt.Errorf("%w: kept copy %s: %w", ErrBadSignature, f.path(ListFile), err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrBadList, err)
	}
	if l.Serial != f.st.Serial {
		return nil, fmt.Errorf("%w: kept copy has serial %d, state says %d", ErrStateDir, l.Serial, f.st.Serial)
	}
	f.signedBy = signedBy
	return l, nil
}

// getFile downloads url with a size cap, adding the conditional headers
// cond, into a new temporary file beside dst, and reads it back into a
// buffer of its size: the memory it takes is the size of the list, never
// more, whatever the server sends (an endless body, a gzip bomb). A nil
// download with a nil error means 304 Not Modified.
func (f *fetcher) getFile(ctx context.Context, url string, cond http.Header, limit int64, dst string) (*download, http.Header, error) {
	resp, err := f.request(ctx, url, cond, limit)
	if resp == nil || err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	file, err := createTemp(dst, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	d := &download{file: file}
	n, err := copyAtMost(file, resp.Body, limit)
	switch {
	case errors.Is(err, ErrTooLarge):
		d.drop()
		return nil, nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, url, limit)
	case err != nil:
		d.drop()
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrDownload, url, serverError{err})
	}
	d.data = make([]byte, n)
	if _, err := file.ReadAt(d.data, 0); err != nil {
		d.drop()
		return nil, nil, fmt.Errorf("%w: %w", ErrStateDir, err)
	}
	return d, resp.Header, nil
}

// copyAtMost copies src to dst up to limit bytes, and fails with
// ErrTooLarge when src has more, having read at most limit+1 bytes of it.
func copyAtMost(dst io.Writer, src io.Reader, limit int64) (int64, error) {
	n, err := io.CopyBuffer(dst, io.LimitReader(src, limit), make([]byte, 64<<10))
	if err != nil {
		return n, err
	}
	if n == limit {
		var one [1]byte
		if m, _ := io.ReadFull(src, one[:]); m > 0 {
			return n, ErrTooLarge
		}
	}
	return n, nil
}

// request sends a GET for url with the conditional headers cond and checks
// the answer: a nil response with a nil error means 304 Not Modified;
// else the caller reads and closes the body.
func (f *fetcher) request(ctx context.Context, url string, cond http.Header, limit int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDownload, err)
	}
	req.Header.Set("User-Agent", "starttls-preload-fetch")
	for k, v := range cond {
		req.Header[k] = v
	}
	resp, err := f.o.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDownload, serverError{err})
	}
	switch {
	case req.URL.Scheme == "https" && resp.Request.URL.Scheme != "https":
		err = fmt.Errorf("%w: %w", ErrDownload, errPlainHTTP)
	case resp.StatusCode == http.StatusNotModified && len(cond) > 0:
		err = errNotModified
	case resp.StatusCode != http.StatusOK:
		// The status line is the server's text: cleaned and cut short.
		err = fmt.Errorf("%w: %s: HTTP status %s", ErrDownload, url, serverText(resp.Status))
	case resp.ContentLength > limit:
		err = fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, url, resp.ContentLength, limit)
	}
	if err != nil {
		resp.Body.Close()
		if err == errNotModified {
			return nil, nil
		}
		return nil, err
	}
	return resp, nil
}

var errNotModified = errors.New("not modified")

// get downloads a small file (the signature, at most limit bytes) into
// memory.
func (f *fetcher) get(ctx context.Context, url string, limit int64) ([]byte, error) {
	resp, err := f.request(ctx, url, nil, limit)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err = copyAtMost(&buf, resp.Body, limit)
	switch {
	case errors.Is(err, ErrTooLarge):
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrTooLarge, url, limit)
	case err != nil:
		return nil, fmt.Errorf("%w: %s: %w", ErrDownload, url, serverError{err})
	}
	return buf.Bytes(), nil
}

// looksLikeHTML recognises an error page served with status 200.
func looksLikeHTML(b []byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n\ufeff")
	return len(b) > 0 && b[0] == '<'
}

// hasEntry reports whether a rendered file has a line that is neither
// blank nor a comment.
func hasEntry(b []byte) bool {
	for line := range bytes.Lines(b) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' {
			return true
		}
	}
	return false
}

func runReload(ctx context.Context, timeout time.Duration, command string) error {
	out, err := runCommand(ctx, timeout, "/bin/sh", "-c", command)
	if err != nil {
		return fmt.Errorf("%w: %q: %w%s", ErrReload, command, err, firstLine(out))
	}
	slog.Info("reloaded", "command", command)
	return nil
}

// firstLine formats the first line of a command's output for an error.
func firstLine(out []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return ": " + s
}
