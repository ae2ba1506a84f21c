package sse_test

import (
	"fmt"
	"strings"
	"testing"

	"roomcast/api/sse"
)

// benchMessage is a stored message JSON of about size bytes, as the post
// script writes it.
func benchMessage(size int) []byte {
	head := `{"id":"mbench1-123456","seq":123456,"room":"lobby","user":"bench","text":"`
	tail := `","time":"2026-01-01T00:00:00.000Z"}`
	return []byte(head + strings.Repeat("x", max(size-len(head)-len(tail), 1)) + tail)
}

// BenchmarkAppendEvent encodes one message event. fresh starts from a nil
// buffer; presized starts from an empty buffer with room for the event, as
// Frames.Message does once per message; reused appends to a buffer kept
// between calls, the cost of the encoding alone.
func BenchmarkAppendEvent(b *testing.B) {
	for _, size := range []int{200, 4096} {
		data := benchMessage(size)
		b.Run(fmt.Sprintf("size=%d/fresh", size), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n += len(sse.AppendEvent(nil, "mbench1-123456", "message", data))
			}
			if n == 0 {
				b.Fatal("nothing encoded")
			}
		})
		b.Run(fmt.Sprintf("size=%d/presized", size), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n += len(sse.AppendEvent(make([]byte, 0, len(data)+64), "mbench1-123456", "message", data))
			}
			if n == 0 {
				b.Fatal("nothing encoded")
			}
		})
		b.Run(fmt.Sprintf("size=%d/reused", size), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf = sse.AppendEvent(buf[:0], "mbench1-123456", "message", data)
			}
			if len(buf) <= len(data) {
				b.Fatalf("encoded %d bytes from %d", len(buf), len(data))
			}
		})
	}
}
