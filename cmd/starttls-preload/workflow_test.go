package main

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestPRCheckWorkflowIsSafeForForks reads the shipped workflow and holds
// it to what makes pull_request_target safe: only that trigger, the three
// permissions and no more, the base commit checked out without keeping the
// token, and nothing taken from the pull request's head.
func TestPRCheckWorkflowIsSafeForForks(t *testing.T) {
	raw, err := os.ReadFile("../../.github/workflows/pr-check.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		On          map[string]any    `yaml:"on"`
		Permissions map[string]string `yaml:"permissions"`
		Jobs        map[string]struct {
			Permissions any `yaml:"permissions"`
			Steps       []struct {
				Uses string            `yaml:"uses"`
				With map[string]string `yaml:"with"`
				Run  string            `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatal(err)
	}
	if len(wf.On) != 1 || wf.On["pull_request_target"] == nil {
		t.Errorf("triggers %v, want only pull_request_target", wf.On)
	}
	want := map[string]string{"contents": "read", "pull-requests": "write", "statuses": "write"}
	if !reflect.DeepEqual(wf.Permissions, want) {
		t.Errorf("permissions %v, want %v", wf.Permissions, want)
	}
	text := string(raw)
	for _, bad := range []string{"pull_request.head", "head_ref", "head.sha", "refs/pull/", "github.event.pull_request.title", "github.event.pull_request.body"} {
		if strings.Contains(text, bad) {
			t.Errorf("the workflow refers to %q, taken from the pull request", bad)
		}
	}
	checkouts := 0
	for name, job := range wf.Jobs {
		if job.Permissions != nil {
			t.Errorf("job %s widens permissions", name)
		}
		for _, s := range job.Steps {
			if strings.HasPrefix(s.Uses, "actions/checkout@") {
				checkouts++
				if s.With["ref"] != "${{ github.event.pull_request.base.sha }}" || s.With["persist-credentials"] != "false" {
					t.Errorf("checkout %v: want the base commit without persisted credentials", s.With)
				}
			}
		}
	}
	if checkouts != 1 {
		t.Errorf("%d checkouts, want 1 (the base)", checkouts)
	}
}

// TestPRCheckWorkflowExpressions: every ${{ }} expression of the workflow
// is one of a few known to be safe (numbers, the base commit, the token),
// none is inside a run: script (a string from the pull request there —
// its title, branch name, author — is script injection), the only actions
// are checkout and setup-go, and the token reaches only the step that runs
// the binary built from the base.
func TestPRCheckWorkflowExpressions(t *testing.T) {
	raw, err := os.ReadFile("../../.github/workflows/pr-check.yml")
	if err != nil {
		t.Fatal(err)
	}
	safe := map[string]bool{
		"github.event.pull_request.number":   true,
		"github.event.pull_request.base.sha": true,
		"secrets.GITHUB_TOKEN":               true,
	}
	for _, m := range regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`).FindAllStringSubmatch(string(raw), -1) {
		if !safe[m[1]] {
			t.Errorf("expression %q is not known to be safe", m[0])
		}
	}
	var wf struct {
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			Env   map[string]string `yaml:"env"`
			Steps []struct {
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				Env  map[string]string `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(raw, &wf); err != nil {
		t.Fatal(err)
	}
	if len(wf.Env) > 0 {
		t.Errorf("workflow-wide env %v", wf.Env)
	}
	for name, job := range wf.Jobs {
		if len(job.Env) > 0 {
			t.Errorf("job %s env %v", name, job.Env)
		}
		for i, s := range job.Steps {
			if strings.Contains(s.Run, "${{") {
				t.Errorf("job %s step %d interpolates into its script: %q", name, i, s.Run)
			}
			if s.Uses != "" && !strings.HasPrefix(s.Uses, "actions/checkout@") && !strings.HasPrefix(s.Uses, "actions/setup-go@") {
				t.Errorf("job %s step %d uses %s", name, i, s.Uses)
			}
			for k, v := range s.Env {
				if strings.Contains(v, "secrets.") && !strings.Contains(s.Run, `"$RUNNER_TEMP/starttls-preload" pr-check`) {
					t.Errorf("job %s step %d gets %s = %s but does not run the base's binary", name, i, k, v)
				}
			}
		}
	}
}
