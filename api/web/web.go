// Package web holds roomcast's chat page: plain HTML, CSS and JavaScript
// embedded in the binary, with no build step and nothing loaded from
// elsewhere.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html *.js style.css icon.svg
var files embed.FS

// FS returns the page's files: index.html and the assets it loads from
// /assets/: the ES modules (app.js, the entry, imports the others by
// relative name, so they sit side by side), style.css and icon.svg. The
// files never change while the process runs.
func FS() fs.FS { return files }
