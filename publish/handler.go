package publish

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/starttls-preload/starttls-preload/listgen"
)

// Paths served by NewHandler (and written by Export), besides
// /policy-list.json, its .sig and .sshsig and /v/SERIAL/policy-list.json*.
const (
	PubKeyFile         = "pubkey.pem"
	AllowedSignersFile = "allowed_signers"
	PostfixFile        = "postfix-tls-policy"
	EximFile           = "exim-tls-policy"
)

// Cache lifetimes. The current list is revalidated cheaply (ETag); a list
// by serial never changes.
const (
	cacheCurrent   = "public, max-age=300"
	cacheImmutable = "public, max-age=31536000, immutable"
	cacheKey       = "public, max-age=3600"
)

// gzipMin is the size under which bodies are sent uncompressed.
const gzipMin = 1024

// NewHandler serves the signed list from src:
//
//	GET /policy-list.json[.sig|.sshsig]         the current list and its signatures
//	GET /v/SERIAL/policy-list.json[.sig|.sshsig] any published list (immutable)
//	GET /pubkey.pem, /allowed_signers           the public key(s) (PEM, OpenSSH)
//	GET /postfix-tls-policy, /exim-tls-policy   the current list rendered
//
// Every response has a strong ETag and Last-Modified, honours
// If-None-Match / If-Modified-Since (304), Range and HEAD, and is gzipped
// when the client asks for it. A list by serial is streamed from the
// archive's files, with the ETag the archive keeps for them; its SERIAL
// is written in decimal without sign or leading zero (/v/+1/, /v/01/ are
// not found). Clients must not trust the server: they
// verify the signature with a key they pinned.
func NewHandler(src Source, pubPEM []byte, allowedSigners string) http.Handler {
	h := &handler{src: src, prepared: map[int64]*prepared{}, started: time.Now().UTC()}
	h.key = newBlob(pubPEM, "application/x-pem-file")
	h.signers = newBlob([]byte(allowedSigners), "text/plain; charset=utf-8")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{file}", h.serveTop)
	mux.HandleFunc("GET /v/{serial}/{file}", h.serveSerial)
	return mux
}

type handler struct {
	src          Source
	key, signers *blob
	started      time.Time

	mu       sync.Mutex
	prepared map[int64]*prepared // a few recent snapshots
}

// blob is one servable body with its lazily compressed twin.
type blob struct {
	data  []byte
	ctype string
	etag  string

	gzOnce sync.Once
	gz     []byte
	gzEtag string
}

func newBlob(data []byte, ctype string) *blob {
	sum := sha256.Sum256(data)
	return &blob{data: data, ctype: ctype, etag: hex.EncodeToString(sum[:12])}
}

func (b *blob) gzipped() ([]byte, string) {
	b.gzOnce.Do(func() {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		zw.Write(b.data)
		zw.Close()
		b.gz, b.gzEtag = buf.Bytes(), b.etag+"-gzip"
	})
	return b.gz, b.gzEtag
}

// prepared holds what is derived from one snapshot.
type prepared struct {
	snap              *Snapshot
	list, sig, sshsig *blob

	renderOnce    sync.Once
	postfix, exim *blob
	renderErr     error
}

func (p *prepared) rendered() (postfix, exim *blob, err error) {
	p.renderOnce.Do(func() {
		l, err := listgen.Parse(p.snap.List)
		if err != nil {
			p.renderErr = err
			return
		}
		pf, ex := listgen.Render(l, listgen.RenderOptions{Now: p.snap.Published})
		p.postfix = newBlob(pf, "text/plain; charset=utf-8")
		p.exim = newBlob(ex, "text/plain; charset=utf-8")
	})
	return p.postfix, p.exim, p.renderErr
}

const maxPrepared = 4

func (h *handler) prepare(s *Snapshot) *prepared {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p := h.prepared[s.Serial]; p != nil && p.snap == s {
		return p
	}
	p := &prepared{
		snap:   s,
		list:   newBlob(s.List, "application/json"),
		sig:    newBlob(s.Sig, "text/plain; charset=utf-8"),
		sshsig: newBlob(s.SSHSig, "text/plain; charset=utf-8"),
	}
	if len(h.prepared) >= maxPrepared {
		var low int64 = -1
		for n := range h.prepared {
			if low < 0 || n < low {
				low = n
			}
		}
		delete(h.prepared, low)
	}
	h.prepared[s.Serial] = p
	return p
}

func (h *handler) serveTop(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	switch file {
	case PubKeyFile:
		serveBlob(w, r, h.key, h.started, cacheKey)
		return
	case AllowedSignersFile:
		serveBlob(w, r, h.signers, h.started, cacheKey)
		return
	case ListFile, SigFile, SSHSigFile, PostfixFile, EximFile:
	default:
		http.NotFound(w, r)
		return
	}
	s, err := h.src.Current(r.Context())
	if err != nil {
		h.sourceError(w, r, err)
		return
	}
	p := h.prepare(s)
	switch file {
	case PostfixFile, EximFile:
		pf, ex, err := p.rendered()
		if err != nil {
			slog.Error("publish: rendering the current list", "serial", s.Serial, "err", err)
			http.Error(w, "the current list cannot be rendered", http.StatusInternalServerError)
			return
		}
		b := pf
		if file == EximFile {
			b = ex
		}
		serveBlob(w, r, b, s.Published, cacheCurrent)
	default:
		serveListFile(w, r, p, file, cacheCurrent)
	}
}

// serveSerial serves a list by serial from its file, streamed: a request
// reads from disk only the bytes it sends, and hashes nothing.
func (h *handler) serveSerial(w http.ResponseWriter, r *http.Request) {
	n, ok := parseSerial(r.PathValue("serial"))
	file := r.PathValue("file")
	if !ok || (file != ListFile && file != SigFile && file != SSHSigFile) {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	var f *File
	var err error
	if file == ListFile {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			// An archive written before gzipped copies has none: the
			// list is then sent as it is.
			if f, err = h.src.Open(r.Context(), n, gzListFile); err == nil {
				hd.Set("Content-Encoding", "gzip")
			}
		}
	}
	if f == nil {
		f, err = h.src.Open(r.Context(), n, file)
	}
	if err != nil {
		hd.Del("Vary")
		h.sourceError(w, r, err)
		return
	}
	defer f.Close()
	ctype := "text/plain; charset=utf-8"
	if file == ListFile {
		ctype = "application/json"
	}
	hd.Set("Content-Type", ctype)
	hd.Set("Cache-Control", cacheImmutable)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("ETag", `"`+f.ETag+`"`)
	http.ServeContent(w, r, "", f.Published, f.File)
}

// parseSerial reads the SERIAL of /v/SERIAL/: decimal digits without sign
// or leading zero. Any other spelling (+1, 01, 1e0) is not found rather
// than redirected, so that one list has one URL in every cache.
func parseSerial(s string) (int64, bool) {
	if s == "" || s[0] < '1' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || strconv.FormatInt(n, 10) != s {
		return 0, false
	}
	return n, true
}

func (h *handler) sourceError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if r.Context().Err() == nil {
		slog.Error("publish: reading the list", "err", err)
	}
	http.Error(w, "list unavailable", http.StatusServiceUnavailable)
}

func serveListFile(w http.ResponseWriter, r *http.Request, p *prepared, file, cache string) {
	b := p.list
	switch file {
	case SigFile:
		b = p.sig
	case SSHSigFile:
		if len(p.snap.SSHSig) == 0 {
			http.NotFound(w, r)
			return
		}
		b = p.sshsig
	}
	serveBlob(w, r, b, p.snap.Published, cache)
}

// serveBlob writes b with validators and lets http.ServeContent answer
// conditional, range and HEAD requests.
func serveBlob(w http.ResponseWriter, r *http.Request, b *blob, modified time.Time, cache string) {
	hd := w.Header()
	hd.Set("Content-Type", b.ctype)
	hd.Set("Cache-Control", cache)
	hd.Set("X-Content-Type-Options", "nosniff")
	data, etag := b.data, b.etag
	if len(b.data) >= gzipMin {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			data, etag = b.gzipped()
			hd.Set("Content-Encoding", "gzip")
		}
	}
	hd.Set("ETag", `"`+etag+`"`)
	http.ServeContent(w, r, "", modified, bytes.NewReader(data))
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// (RFC 9110 §12.5.3: a coding with q=0 is not acceptable).
func acceptsGzip(h string) bool {
	for part := range strings.SplitSeq(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" && name != "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if name == "*" {
			if q > 0 && !strings.Contains(strings.ToLower(h), "gzip") {
				return true
			}
			continue
		}
		return q > 0
	}
	return false
}
