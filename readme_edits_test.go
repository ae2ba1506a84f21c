package main

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"roomcast/redisscripts/redistest"
)

// TestREADMEEditAndDelete runs the shell block of the README's "Edit and
// delete" section as printed (only the host changed) against a server on
// a real Redis.
func TestREADMEEditAndDelete(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	block := readmeBlock(t, "Edit and delete")
	redis := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+redis.URL(), "KEY_PREFIX=readme-edits:")
	script := strings.ReplaceAll(block, "localhost:8080", strings.TrimPrefix(in.url, "http://"))
	out, err := exec.CommandContext(t.Context(), "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the block failed: %v\n%s", err, out)
	}
	text := strings.ReplaceAll(string(out), "\r", "")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^HTTP/1.1 200 OK$`),
		regexp.MustCompile(`(?m)^Etag: "2"$`),
		regexp.MustCompile(`(?m)^\{"id":"[0-9a-z]+-1",.*"text":"hello",.*"version":2,"edited_at":"[^"]+","metadata":\{"lang":"en"\}\}$`),
		regexp.MustCompile(`(?m)^\{"id":"[0-9a-z]+-1",.*"text":"","time":"[^"]+","version":3,"edited_at":"[^"]+","deleted":true\}$`),
		regexp.MustCompile(`(?m)^\{"messages":\[\],"changes":\[\{"id":"[0-9a-z]+-2","event":"edit",.*\},\{"id":"[0-9a-z]+-3","event":"delete",.*\}\],"has_more":false,"position":"[0-9a-z]+-3"\}$`),
	} {
		if !want.MatchString(text) {
			t.Fatalf("output lacks %s:\n%s", want, text)
		}
	}
	if strings.Contains(text, "urn:roomcast:problem") {
		t.Fatalf("an answer is a problem:\n%s", text)
	}
}
