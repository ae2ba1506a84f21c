package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

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
		regexp.MustCompile(`(?m)^\{"messages":\[\{.*"text":"hello".*"text":"still here\?".*\],"has_more":false,"position":"[^"]+"\}$`),
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

// TestREADMEConfigurationTable checks the README's configuration table
// against the config struct, both ways: every variable of the struct has
// one row whose default and meaning are its envDefault and help tags, and
// every row is a variable of the struct. On failure it prints the table as
// config.go has it, to paste in.
func TestREADMEConfigurationTable(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := configurationRows(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]configRow)
	var names []string // in the struct's order
	var table strings.Builder
	table.WriteString("| Variable | Default | Meaning |\n| --- | --- | --- |\n")
	typ := reflect.TypeFor[config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		row := configRow{name: name, def: f.Tag.Get("envDefault"), meaning: f.Tag.Get("help")}
		want[name] = row
		names = append(names, name)
		table.WriteString(row.String() + "\n")
	}
	for _, name := range names {
		w := want[name]
		got, ok := rows[name]
		switch {
		case !ok:
			t.Errorf("the table has no row for %s", name)
		case got.def != w.def:
			t.Errorf("%s: the table's default is %q, config.go's envDefault %q", name, got.def, w.def)
		case got.meaning != w.meaning:
			t.Errorf("%s: the table's meaning is %q, config.go's help %q", name, got.meaning, w.meaning)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		if _, ok := want[name]; !ok {
			t.Errorf("the table has a row for %s, which is no setting of config.go", name)
		}
	}
	if t.Failed() {
		t.Logf("the table as config.go has it:\n%s", table.String())
	}
}

// configRow is one row of the README's configuration table.
type configRow struct{ name, def, meaning string }

func (r configRow) String() string {
	def := ""
	if r.def != "" {
		def = "`" + r.def + "`"
	}
	return fmt.Sprintf("| `%s` | %s | %s |", r.name, def, r.meaning)
}

// configurationRows reads the rows of the table under "## Configuration",
// by variable name; a row that does not parse, or a name given twice, is an
// error.
func configurationRows(readme string) (map[string]configRow, error) {
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		return nil, fmt.Errorf(`README.md has no "## Configuration" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	rows := make(map[string]configRow)
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue // text, the header, the separator
		}
		cells := strings.Split(strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|"), "|")
		if len(cells) != 3 {
			return nil, fmt.Errorf("row %q has %d cells, want 3 (a meaning may not hold a |)", line, len(cells))
		}
		code := func(cell string) string { return strings.Trim(strings.TrimSpace(cell), "`") }
		row := configRow{name: code(cells[0]), def: code(cells[1]), meaning: strings.TrimSpace(cells[2])}
		if _, dup := rows[row.name]; dup {
			return nil, fmt.Errorf("the table has two rows for %s", row.name)
		}
		rows[row.name] = row
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("the Configuration section has no table rows")
	}
	return rows, nil
}

// TestDocLinks checks every relative link of the repository's Markdown
// files: the file it names exists, and a #fragment into a Markdown file
// names one of its headings (as GitHub makes their anchors).
func TestDocLinks(t *testing.T) {
	var docs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".") && path != ".") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			docs = append(docs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(docs, "README.md") {
		t.Fatalf("found no README.md among %v", docs)
	}
	fenced := regexp.MustCompile("(?s)```.*?```")
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	anchors := make(map[string]map[string]bool)
	headings := func(path string) map[string]bool {
		if a, ok := anchors[path]; ok {
			return a
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		a := make(map[string]bool)
		for _, m := range regexp.MustCompile(`(?m)^#+\s+(.*)$`).FindAllStringSubmatch(fenced.ReplaceAllString(string(data), ""), -1) {
			a[headingAnchor(m[1])] = true
		}
		anchors[path] = a
		return a
	}
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(fenced.ReplaceAllString(string(data), ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, fragment, _ := strings.Cut(target, "#")
			if path == "" {
				path = doc
			} else {
				path = filepath.Join(filepath.Dir(doc), path)
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, target)
				continue
			}
			if fragment != "" && strings.HasSuffix(path, ".md") && !headings(path)[fragment] {
				t.Errorf("%s links to %s, which has no heading #%s", doc, target, fragment)
			}
		}
	}
}

// headingAnchor is the anchor GitHub gives a Markdown heading: lower case,
// punctuation other than - and _ dropped, spaces made -.
func headingAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}
