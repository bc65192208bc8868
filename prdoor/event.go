package prdoor

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// MaxEvent bounds the event file read from GITHUB_EVENT_PATH.
const MaxEvent = 8 << 20

// Event is what pr-check needs from a pull_request or pull_request_target
// event: the repository and the pull request's number.
type Event struct {
	Repo   string // OWNER/NAME
	Number int
}

// ParseEvent reads a pull_request or pull_request_target event payload.
func ParseEvent(b []byte) (Event, error) {
	if len(b) > MaxEvent {
		return Event{}, fmt.Errorf("%w: more than %d bytes", ErrEvent, MaxEvent)
	}
	var ev struct {
		Number      int `json:"number"`
		PullRequest *struct {
			Number int `json:"number"`
		} `json:"pull_request"`
		Repository *struct {
			FullName string `json:"full_name"`
		} `json:"repository"`
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrEvent, err)
	}
	if ev.PullRequest == nil {
		return Event{}, fmt.Errorf("%w: not a pull_request event (no \"pull_request\" object)", ErrEvent)
	}
	n := ev.PullRequest.Number
	if n == 0 {
		n = ev.Number
	}
	if n <= 0 {
		return Event{}, fmt.Errorf("%w: no pull request number", ErrEvent)
	}
	e := Event{Number: n}
	if ev.Repository != nil {
		e.Repo = ev.Repository.FullName
	}
	return e, nil
}

// ReadEvent reads and parses the event file at path, at most MaxEvent bytes.
func ReadEvent(path string) (Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrEvent, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEvent+1))
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrEvent, err)
	}
	return ParseEvent(b)
}
