package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"roomcast/redisscripts/redistest"
)

// TestREADMEUnreadCounts runs the shell block of the README's "Unread
// counts" section as printed (only the host changed) against a server on
// a real Redis.
func TestREADMEUnreadCounts(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "sed"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed: %v", tool, err)
		}
	}
	block := readmeBlock(t, "Unread counts")
	redis := redistest.Start(t)
	in := startRun(t, "REDIS_URL="+redis.URL(), "KEY_PREFIX=readme-reads:")
	script := strings.ReplaceAll(block, "localhost:8080", strings.TrimPrefix(in.url, "http://"))
	out, err := exec.CommandContext(t.Context(), "bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the block failed: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^\{"room":"team","last_read":"[0-9a-z]+-1","unread":1\}$`),
		regexp.MustCompile(`(?m)^\{"rooms":\[\{"room":"team","last_read":"[0-9a-z]+-1","unread":1,"last_message":\{.*"text":"or 10".*\}\}\]\}$`),
		regexp.MustCompile(`(?m)^\{"rooms":\[\{"room":"team",.*"unread":1,.*\},\{"room":"lobby","unread":0\}\]\}$`),
	} {
		if !want.MatchString(text) {
			t.Fatalf("output lacks %s:\n%s", want, text)
		}
	}
}

// readmeBlock is the first sh block under the README's "## title".
func readmeBlock(t *testing.T, title string) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## "+title+"\n")
	_, block, ok2 := strings.Cut(section, "```sh\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatalf("README.md has no sh block under %q", "## "+title)
	}
	return block
}
