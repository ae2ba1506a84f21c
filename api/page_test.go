package api_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"roomcast/api"
	"roomcast/api/web"
)

// pageServer serves the API without a store: enough for the page. Its
// answers are fetched with fetchPage, which checks them against the spec.
func pageServer(t testing.TB) *httptest.Server {
	t.Helper()
	e := echo.New()
	api.New(api.Options{}).Register(e)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

// fetchPage fetches path from srv through checkedClient with optional header
// pairs, returning the answer and its body.
func fetchPage(t testing.TB, srv *httptest.Server, path string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := checkedClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, string(body)
}

func TestPageServesEmbeddedFiles(t *testing.T) {
	t.Parallel()
	srv := pageServer(t)
	tests := []struct {
		name, path, contentType, contains string
	}{
		{name: "Page", path: "/", contentType: "text/html; charset=utf-8", contains: `<script type="module" src="/assets/app.js">`},
		{name: "Script", path: "/assets/app.js", contentType: "text/javascript; charset=utf-8", contains: "from './session.js';"},
		{name: "Module", path: "/assets/sharedstream.js", contentType: "text/javascript; charset=utf-8", contains: "new EventSource("},
		{name: "Style", path: "/assets/style.css", contentType: "text/css; charset=utf-8", contains: ".message"},
		{name: "Icon", path: "/assets/icon.svg", contentType: "image/svg+xml", contains: "<svg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := fetchPage(t, srv, tt.path)
			if got, want := resp.StatusCode, http.StatusOK; got != want {
				t.Fatalf("status = %d, want %d", got, want)
			}
			h := resp.Header
			if got := h.Get("Content-Type"); got != tt.contentType {
				t.Fatalf("Content-Type = %q, want %q", got, tt.contentType)
			}
			if got := h.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self';") || strings.Contains(got, "unsafe") {
				t.Fatalf("Content-Security-Policy = %q, want default-src 'self' and nothing unsafe", got)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Fatalf("X-Content-Type-Options = %q, want nosniff", got)
			}
			if !strings.Contains(body, tt.contains) {
				t.Fatalf("body does not contain %q", tt.contains)
			}

			// A client holding the current version revalidates cheaply.
			resp2, _ := fetchPage(t, srv, tt.path, "If-None-Match", h.Get("ETag"))
			if got, want := resp2.StatusCode, http.StatusNotModified; got != want {
				t.Fatalf("with If-None-Match %q: status = %d, want %d", h.Get("ETag"), got, want)
			}
		})
	}
}

func TestPageUnknownAssetIsProblem(t *testing.T) {
	t.Parallel()
	srv := pageServer(t)
	for _, path := range []string{"/assets/nope.js", "/assets/index.html", "/assets/web.go", "/assets/", "/assets/..%2fweb.go"} {
		resp, _ := fetchPage(t, srv, path)
		if got, want := resp.StatusCode, http.StatusNotFound; got != want {
			t.Fatalf("GET %s: status = %d, want %d", path, got, want)
		}
		if got, want := resp.Header.Get("Content-Type"), "application/problem+json"; got != want {
			t.Fatalf("GET %s: Content-Type = %q, want %q", path, got, want)
		}
	}
}

// The page loads nothing from elsewhere, and its script never turns text
// into markup; the browser test checks the behaviour, this the source.
func TestPageSourceIsSelfContained(t *testing.T) {
	t.Parallel()
	html, err := fs.ReadFile(web.FS(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(string(html), -1)
	if len(refs) == 0 {
		t.Fatalf("index.html references nothing; the pattern is wrong")
	}
	for _, ref := range refs {
		if !strings.HasPrefix(ref[1], "/assets/") {
			t.Fatalf("index.html references %q, want only /assets/ files", ref[1])
		}
	}
	if regexp.MustCompile(`<script>|\sstyle=|\son[a-z]+=`).Match(html) {
		t.Fatalf("index.html has inline script, style or event handlers, which the page's policy forbids")
	}
	for name, script := range webScripts(t) {
		for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
			if strings.Contains(script, sink) {
				t.Fatalf("%s uses %s; set text with textContent", name, sink)
			}
		}
	}
}

// Every module the page imports is one of its files, and every file is
// served as a script the browser runs as a module.
func TestPageModulesAreServed(t *testing.T) {
	t.Parallel()
	srv := pageServer(t)
	scripts := webScripts(t)
	if _, ok := scripts["app.js"]; !ok || len(scripts) < 2 {
		t.Fatalf("page scripts = %d files, want app.js and the modules it imports", len(scripts))
	}
	imports := regexp.MustCompile(`(?m)^import [^;]*? from '([^']*)';$`)
	imported := map[string]bool{"app.js": true}
	for name, script := range scripts {
		for _, m := range imports.FindAllStringSubmatch(script, -1) {
			dep, ok := strings.CutPrefix(m[1], "./")
			if _, embedded := scripts[dep]; !ok || !embedded {
				t.Fatalf("%s imports %q, want ./ and one of the page's files", name, m[1])
			}
			imported[dep] = true
		}
		if regexp.MustCompile(`\bimport\(|\brequire\(`).MatchString(script) {
			t.Fatalf("%s loads code dynamically; import it by name", name)
		}
	}
	for name := range scripts {
		if !imported[name] {
			t.Fatalf("%s is embedded but nothing imports it", name)
		}
		resp, _ := fetchPage(t, srv, "/assets/"+name)
		if got, want := resp.StatusCode, http.StatusOK; got != want {
			t.Fatalf("GET /assets/%s: status = %d, want %d", name, got, want)
		}
		// Browsers refuse a module of any other type under nosniff.
		if got, want := resp.Header.Get("Content-Type"), "text/javascript; charset=utf-8"; got != want {
			t.Fatalf("GET /assets/%s: Content-Type = %q, want %q", name, got, want)
		}
	}
}

// webScripts returns the page's JavaScript files by name.
func webScripts(t testing.TB) map[string]string {
	t.Helper()
	names, err := fs.Glob(web.FS(), "*.js")
	if err != nil {
		t.Fatal(err)
	}
	scripts := map[string]string{}
	for _, name := range names {
		body, err := fs.ReadFile(web.FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		scripts[name] = string(body)
	}
	return scripts
}

// The TypeScript client ships the page's sharedstream.js as it is
// (roomcast-client-ts/sharedstream): the copy is the same file.
func TestSharedStreamShippedInTSClient(t *testing.T) {
	t.Parallel()
	page, err := fs.ReadFile(web.FS(), "sharedstream.js")
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile("client/ts/sharedstream.js")
	if err != nil {
		t.Fatal(err)
	}
	if string(shipped) != string(page) {
		t.Fatal("api/client/ts/sharedstream.js differs from api/web/sharedstream.js: copy it over")
	}
}
