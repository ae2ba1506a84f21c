package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"roomcast/redisscripts/redistest"
)

// TestREADMETryIt runs the shell block of the README's "Try it" section as
// printed (only the host changed, and each never-ending stream cut after a
// second) against a server on a real Redis. The id it resumes from must be
// the one it captured, so no answer may be a reset; and every JSON answer
// must end with a newline, or the next output would share its line.
func TestREADMETryIt(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed", "timeout"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is needed: %v", tool, err)
			}
			t.Skipf("%s is needed: %v", tool, err)
		}
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Try it\n")
	_, block, ok2 := strings.Cut(section, "```sh\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal(`README.md has no sh block under "## Try it"`)
	}
	redis := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+redis.URL(), "KEY_PREFIX=readme:")
	script := strings.ReplaceAll(block, "localhost:8080", strings.TrimPrefix(in.url, "http://"))
	script = strings.ReplaceAll(script, "curl -N ", "timeout 1 curl -sN ")
	if !strings.Contains(script, "timeout 1 curl") {
		t.Fatal("the block has no stream (curl -N) to cut")
	}
	cmd := exec.CommandContext(t.Context(), "bash", "-c", script)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil && !strings.Contains(err.Error(), "exit status 124") { // the last stream's timeout
		t.Fatalf("the block failed: %v\n%s\n%s", err, out, stderr.String())
	}
	text := string(out)
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "{") && !json.Valid([]byte(line)) {
			t.Fatalf("output line %q is not one JSON answer: an answer without a final newline?\n%s", line, text)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\{"id":"[0-9a-z]+-1",.*"text":"hello"`), // the first post
		regexp.MustCompile(`(?m)^[0-9a-z]+-2$`),                          // echo "$id"
		regexp.MustCompile(`(?m)^\{"messages":\[\{.*"text":"hello".*"text":"still here\?".*\],"has_more":false\}$`),
		regexp.MustCompile(`(?m)^retry: [0-9]+$`), // the streams opened
	} {
		if !want.MatchString(text) {
			t.Fatalf("output lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "reset") || strings.Contains(text, "urn:roomcast:problem") {
		t.Fatalf("an answer is a reset or a problem:\n%s", text)
	}
}
