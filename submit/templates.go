package submit

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the page templates, each layout.html around one page.
var (
	pagesOnce sync.Once
	pages     map[string]*template.Template
	pagesErr  error
)

// timeLayout is how pages and mails write a time.
const timeLayout = "2006-01-02 15:04 UTC"

var funcs = template.FuncMap{
	"fmtTime": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format(timeLayout)
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format(timeLayout)
		}
		return ""
	},
	"fmtDate": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.UTC().Format("2006-01-02")
		case *time.Time:
			if v == nil {
				return ""
			}
			return v.UTC().Format("2006-01-02")
		}
		return ""
	},
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
}

func parseTemplates() error {
	pagesOnce.Do(func() {
		names, err := fs.Glob(templateFS, "templates/*.html")
		if err != nil {
			pagesErr = err
			return
		}
		pages = map[string]*template.Template{}
		for _, n := range names {
			name := n[len("templates/") : len(n)-len(".html")]
			if name == "layout" {
				continue
			}
			t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
			if err != nil {
				pagesErr = fmt.Errorf("submit: template %s: %w", n, err)
				return
			}
			pages[name] = t
		}
	})
	return pagesErr
}

// bufPool holds the buffers pages are rendered into (a status page is
// some 80 KB).
var bufPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 64<<10)) }}

// Page is what every page shows around its content.
type Page struct {
	Title string
	CSRF  string // the forms' token
}

// render writes a page, or a 500 if the template fails (nothing of the
// page is sent then).
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	b := bufPool.Get().(*bytes.Buffer)
	defer func() {
		if b.Cap() <= 1<<20 {
			b.Reset()
			bufPool.Put(b)
		}
	}()
	if err := pages[name].ExecuteTemplate(b, "layout", data); err != nil {
		s.log.ErrorContext(r.Context(), "rendering a page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// A page longer than the server's 4 KB buffer would go out chunked:
	// its length is known, so it goes out in one piece.
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	if w.Header().Get("Cache-Control") == "" {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		w.Write(b.Bytes())
	}
}

type errorData struct {
	Page
	Message string
}

func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, r, code, "error", errorData{Page: Page{Title: http.StatusText(code)}, Message: msg})
}

func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		s.errorPage(w, r, http.StatusNotFound, "No such page.")
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.FileServerFS(staticFS).ServeHTTP(w, r)
}
