// Package web holds roomcast's chat page: plain HTML, CSS and JavaScript
// embedded in the binary, with no build step and nothing loaded from
// elsewhere.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html app.js style.css icon.svg
var files embed.FS

// FS returns the page's files: index.html and the assets it loads from
// /assets/ (app.js, style.css, icon.svg). The files never change while the
// process runs.
func FS() fs.FS { return files }
