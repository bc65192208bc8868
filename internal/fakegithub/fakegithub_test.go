package fakegithub

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestAsDocumented holds the fake to the behaviour of GitHub's REST API
// that the door relies on.
func TestAsDocumented(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 2<<20)
	s := New(t, "o", "r", map[string][]byte{"small.txt": []byte("hi"), "big.txt": big})
	for i := 1; i <= 3; i++ {
		s.OpenPR(i, "o/r", map[string][]byte{"small.txt": []byte{byte('a' + i)}})
	}
	api := s.APIURL() + "/repos/o/r"

	// Conditional request: the same ETag gives a 304 with no body.
	resp, _ := get(t, api+"/pulls?state=open", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" {
		t.Fatalf("list: %d, ETag %q", resp.StatusCode, etag)
	}
	resp, body := get(t, api+"/pulls?state=open", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Fatalf("conditional: %d %q", resp.StatusCode, body)
	}
	// Pagination with a Link header.
	resp, body = get(t, api+"/pulls?per_page=2", nil)
	var prs []map[string]any
	json.Unmarshal(body, &prs)
	if len(prs) != 2 || !strings.Contains(resp.Header.Get("Link"), `page=2`) || !strings.Contains(resp.Header.Get("Link"), `rel="next"`) {
		t.Fatalf("page 1: %d items, Link %q", len(prs), resp.Header.Get("Link"))
	}
	// Contents: base64 up to 1 MB, "none" above, raw on request.
	_, body = get(t, api+"/contents/small.txt", nil)
	if !strings.Contains(string(body), `"encoding":"base64"`) {
		t.Errorf("small file: %s", body)
	}
	_, body = get(t, api+"/contents/big.txt", nil)
	if !strings.Contains(string(body), `"encoding":"none"`) || !strings.Contains(string(body), `"size":2097152`) {
		t.Errorf("big file: %.200s", body)
	}
	resp, body = get(t, api+"/contents/big.txt", map[string]string{"Accept": "application/vnd.github.raw"})
	if resp.StatusCode != 200 || len(body) != len(big) {
		t.Errorf("raw: %d, %d bytes", resp.StatusCode, len(body))
	}
	if resp, _ := get(t, api+"/contents/missing.txt", nil); resp.StatusCode != 404 {
		t.Errorf("missing file: %d", resp.StatusCode)
	}
	// Someone else's comment cannot be edited with the bot's token.
	s.AddComment(1, "human", false, "hello")
	id := s.Comments(1)[0].ID
	req, _ := http.NewRequest("PATCH", api+"/issues/comments/"+itoa(id), strings.NewReader(`{"body":"x"}`))
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 403 || s.Comments(1)[0].Body != "hello" {
		t.Errorf("edit of another's comment: %d", r2.StatusCode)
	}
	if n := s.CallCount("GET", `/pulls$`); n != 3 {
		t.Errorf("recorded %d list calls, want 3", n)
	}
}

func itoa(i int64) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// TestCallRecordedBeforeAnswer: a request is in Calls as soon as its
// answer has arrived, so a test may count calls right after making them.
func TestCallRecordedBeforeAnswer(t *testing.T) {
	s := New(t, "o", "r", map[string][]byte{"a.txt": []byte("a")})
	for i := range 300 {
		get(t, s.APIURL()+"/repos/o/r", nil)
		if n := len(s.Calls()); n != i+1 {
			t.Fatalf("after %d requests, %d recorded", i+1, n)
		}
	}
}
