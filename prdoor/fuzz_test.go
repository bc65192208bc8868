package prdoor

import "testing"

// FuzzParseEvent: any event file gives an event with a positive number or
// an error wrapping ErrEvent, never a panic.
func FuzzParseEvent(f *testing.F) {
	f.Add([]byte(`{"action":"opened","number":7,"pull_request":{"number":7},"repository":{"full_name":"example/list"}}`))
	f.Add([]byte(`{"pull_request":{"number":1e3}}`))
	f.Add([]byte(`{"pull_request":null}`))
	f.Add([]byte("\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err == nil && ev.Number <= 0 {
			t.Fatalf("event %+v without error", ev)
		}
	})
}
