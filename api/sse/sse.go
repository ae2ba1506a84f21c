// Package sse encodes Server-Sent Events as the HTML Living Standard's
// event-stream format defines them.
package sse

import (
	"bytes"
	"strconv"
	"strings"
)

// fieldCleaner removes what would end an id or event field early: a line
// break of any kind, and NUL, which makes browsers ignore an id.
var fieldCleaner = strings.NewReplacer("\r", "", "\n", "", "\x00", "")

// AppendEvent appends one event to dst. Empty id or event fields are left
// out. data is split into one "data:" line per line, so that no content can
// end the event or inject a field.
func AppendEvent(dst []byte, id, event string, data []byte) []byte {
	if id != "" {
		dst = append(dst, "id: "...)
		dst = append(dst, fieldCleaner.Replace(id)...)
		dst = append(dst, '\n')
	}
	if event != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, fieldCleaner.Replace(event)...)
		dst = append(dst, '\n')
	}
	for {
		line, rest, more := cutLine(data)
		dst = append(dst, "data: "...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
		if !more {
			break
		}
		data = rest
	}
	return append(dst, '\n')
}

// AppendComment appends a comment line, which clients ignore; it keeps idle
// connections open and can say why the server closes a stream.
func AppendComment(dst []byte, text string) []byte {
	dst = append(dst, ": "...)
	dst = append(dst, fieldCleaner.Replace(text)...)
	return append(dst, "\n\n"...)
}

// AppendRetry appends the reconnection delay the client should use.
func AppendRetry(dst []byte, milliseconds int64) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, milliseconds, 10)
	return append(dst, "\n\n"...)
}

// cutLine splits data at its first line break: CRLF, LF or CR.
func cutLine(data []byte) (line, rest []byte, found bool) {
	i := bytes.IndexAny(data, "\r\n")
	if i < 0 {
		return data, nil, false
	}
	if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
		return data[:i], data[i+2:], true
	}
	return data[:i], data[i+1:], true
}
