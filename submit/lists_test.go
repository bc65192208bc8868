package submit

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The statistics read at most maxStatsPoints lists, the first and the
// latest among them, and each list once.
func TestStatsSamplesSerials(t *testing.T) {
	e := newEnv(t)
	for i := int64(1); i <= 300; i++ {
		modes := map[string]string{}
		for j := range i % 7 {
			modes[fmt.Sprintf("d%d.test", j)] = "testing"
		}
		modes["e.test"] = "enforce"
		e.arch.publish(t, i, t0.Add(time.Duration(i)*time.Hour), modes)
	}
	st := decode[statsResponse](t, e.get("/api/v1/stats"))
	if n := len(st.Lists); n > maxStatsPoints || n < maxStatsPoints/2 {
		t.Fatalf("%d points", n)
	}
	first, last := st.Lists[0], st.Lists[len(st.Lists)-1]
	if first.Serial != 1 || last.Serial != 300 || last.Testing != 300%7 || last.Enforce != 1 {
		t.Errorf("first %+v, last %+v", first, last)
	}
	for i := 1; i < len(st.Lists); i++ {
		if st.Lists[i].Serial <= st.Lists[i-1].Serial {
			t.Fatalf("not rising at %d", i)
		}
	}
	page := e.get("/stats").Body.String()
	if strings.Count(page, `<circle class="point testing"`) != len(st.Lists) {
		t.Errorf("chart points")
	}
}

// The statistics are read from the archive once per current list: until
// the next list is published, requests are answered from memory.
func TestStatsReadOncePerList(t *testing.T) {
	e := newEnv(t)
	e.arch.publish(t, 1, t0, map[string]string{"a.test": "testing"})
	e.arch.publish(t, 2, t0.Add(time.Hour), map[string]string{"a.test": "testing", "b.test": "enforce"})
	calls := func() int {
		e.arch.mu.Lock()
		defer e.arch.mu.Unlock()
		return e.arch.serialsCalls
	}
	for range 5 {
		decode[statsResponse](t, e.get("/api/v1/stats"))
		e.get("/stats")
	}
	if n := calls(); n != 1 {
		t.Errorf("ten requests read the archive's serials %d times, want once", n)
	}
	e.arch.publish(t, 3, t0.Add(2*time.Hour), map[string]string{"c.test": "enforce"})
	st := decode[statsResponse](t, e.get("/api/v1/stats"))
	if n := calls(); n != 2 || len(st.Lists) != 3 || st.Lists[2].Serial != 3 || st.Lists[2].Enforce != 1 {
		t.Errorf("after serial 3: %d readings, %+v", n, st.Lists)
	}
}

// /list pages through a large list and its search.
func TestListPages(t *testing.T) {
	e := newEnv(t)
	modes := map[string]string{}
	for i := range 1200 {
		modes[fmt.Sprintf("d%04d.test", i)] = "testing"
	}
	e.arch.publish(t, 1, t0, modes)
	var got []string
	after := ""
	for range 5 {
		lr := decode[listResponse](t, e.get("/api/v1/list?after="+after))
		for _, en := range lr.Entries {
			got = append(got, en.Domain)
		}
		if lr.Next == "" {
			break
		}
		after = lr.Next
	}
	if len(got) != 1200 || got[0] != "d0000.test" || got[1199] != "d1199.test" {
		t.Fatalf("%d entries", len(got))
	}
	lr := decode[listResponse](t, e.get("/api/v1/list?q=D011"))
	if len(lr.Entries) != 10 || lr.Next != "" || lr.Total != 1200 {
		t.Errorf("search: %+v", lr)
	}
	rec := e.get("/list")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `id="list-next" href="/list?after=d0499.test&amp;q="`) {
		t.Errorf("page: %s", rec.Body.String()[:500])
	}
}
