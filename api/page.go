package api

import (
	"crypto/sha256"
	"encoding/base64"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"

	"roomcast/api/web"
)

// pagePolicy is the Content-Security-Policy of the chat page and its assets:
// the page runs only its own script and style, connects only to roomcast,
// has no inline code, and cannot be framed.
const pagePolicy = "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'"

// webFile is one embedded file of the page, ready to serve.
type webFile struct {
	body        []byte
	contentType string
	etag        string
}

// webFiles reads the embedded page once; the files never change while the
// process runs.
var webFiles = sync.OnceValue(func() map[string]webFile {
	files := map[string]webFile{}
	_ = fs.WalkDir(web.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(web.FS(), name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		files[name] = webFile{
			body:        body,
			contentType: mime.TypeByExtension(path.Ext(name)),
			etag:        `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`,
		}
		return nil
	})
	return files
})

// page serves the chat page.
// GET /
func (h *Handler) page(c echo.Context) error {
	return serveWebFile(c, "index.html")
}

// asset serves a script, style sheet or image of the chat page.
// GET /assets/{file}
func (h *Handler) asset(c echo.Context) error {
	name := c.Param("file")
	if name == "index.html" {
		return problemForStatus(http.StatusNotFound)
	}
	return serveWebFile(c, name)
}

// serveWebFile answers with an embedded file, or 404 when there is none by
// that name. Clients revalidate with the ETag (304 when theirs is current),
// so a new release is seen at once. The files are small: no ranges.
func serveWebFile(c echo.Context, name string) error {
	f, ok := webFiles()[name]
	if !ok {
		return problemForStatus(http.StatusNotFound)
	}
	header := c.Response().Header()
	header.Set("Content-Security-Policy", pagePolicy)
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Referrer-Policy", "no-referrer")
	header.Set(echo.HeaderCacheControl, "no-cache")
	header.Set("ETag", f.etag)
	if etagMatches(c.Request().Header.Get("If-None-Match"), f.etag) {
		return c.NoContent(http.StatusNotModified)
	}
	return c.Blob(http.StatusOK, f.contentType, f.body)
}

// etagMatches reports whether an If-None-Match header names etag (weakly,
// as RFC 9110 compares for GET) or is "*".
func etagMatches(ifNoneMatch, etag string) bool {
	for _, tag := range strings.Split(ifNoneMatch, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == etag || tag == "*" {
			return true
		}
	}
	return false
}
