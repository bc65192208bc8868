package browser

import (
	"bytes"
	"html/template"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var formPage = template.Must(template.New("").Parse(`<!doctype html>
<html><head><title>Greeter</title></head>
<body style="font: 24px sans-serif">
{{if .}}<p id="result">Hello, {{.}}!</p>{{end}}
<form method="post" action="/greet">
<label for="name">Name</label> <input id="name" name="name" value="prefilled">
<button id="go" type="submit">Greet</button>
</form>
</body></html>`))

// greeter serves a form on GET / and, on POST /greet, the same page with
// the name posted.
func greeter(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		formPage.Execute(w, "")
	})
	mux.HandleFunc("POST /greet", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		formPage.Execute(w, r.PostForm.Get("name"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestFormPostsAndShowsResult drives Chromium through a form that posts,
// and checks the screenshot of the result is a rendered page.
func TestFormPostsAndShowsResult(t *testing.T) {
	srv := greeter(t)
	p := New(t)

	if status := p.NavigateStatus(srv.URL + "/"); status != http.StatusOK {
		t.Fatalf("GET /: status %d", status)
	}
	if p.Exists("#result") {
		t.Fatal("result shown before the form was posted")
	}
	if got := p.Value("#name"); got != "prefilled" {
		t.Errorf("field holds %q, want prefilled", got)
	}
	p.Fill("#name", "Ada <b>Lovelace</b>")
	if status := p.ClickNavigate("#go"); status != http.StatusOK {
		t.Fatalf("POST /greet: status %d", status)
	}
	p.WaitVisible("#result")
	if got := p.Text("#result"); got != "Hello, Ada <b>Lovelace</b>!" {
		t.Errorf("result %q", got)
	}
	if got := p.Attr("#result", "id"); got != "result" {
		t.Errorf("attribute id = %q", got)
	}
	if got := p.Attr("#name", "placeholder"); got != "" {
		t.Errorf("absent attribute = %q", got)
	}
	if loc := p.Location(); loc != srv.URL+"/greet" {
		t.Errorf("location %s, want %s/greet", loc, srv.URL)
	}
	path := p.Screenshot("greeted")
	if filepath.Dir(path) != p.Dir || !strings.HasSuffix(path, "01-greeted.png") {
		t.Errorf("screenshot path %s", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X < 800 || sz.Y < 600 {
		t.Errorf("screenshot is %v, want the 1280×900 window", sz)
	}
	if dark := darkPixels(img); dark < 100 {
		t.Errorf("screenshot has %d dark pixels: no text was rendered", dark)
	}
}

// TestArtifactsDirectory keeps screenshots under $STARTTLS_PRELOAD_ARTIFACTS,
// in a directory named after the test.
func TestArtifactsDirectory(t *testing.T) {
	root := t.TempDir()
	t.Setenv(ArtifactsEnv, root)
	srv := greeter(t)
	p := New(t)
	p.Navigate(srv.URL + "/")
	path := p.Screenshot("form/page")
	if want := filepath.Join(root, "TestArtifactsDirectory", "01-form_page.png"); path != want {
		t.Errorf("screenshot at %s, want %s", path, want)
	}
	if _, err := os.Stat(path); err != nil {
		t.Error(err)
	}
}

func darkPixels(img image.Image) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r < 0x4000 && g < 0x4000 && bl < 0x4000 {
				n++
			}
		}
	}
	return n
}
