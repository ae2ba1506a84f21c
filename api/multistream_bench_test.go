package api

import (
	"fmt"
	"testing"

	"roomcast/api/cursor"
	"roomcast/api/sse"
	"roomcast/broker/chat"
)

// BenchmarkDeliveryFrame compares the bytes a stream builds per delivered
// message: a single-room stream writes the id line and body the hub encoded
// once for every stream of the room, a 50-room stream builds its own id
// line around the composite cursor (sse.Cursor), then writes the shared
// body.
func BenchmarkDeliveryFrame(b *testing.B) {
	data := []byte(`{"id":"mjuohs00-42","seq":42,"room":"lobby","user":"ada","text":"Hello, room!","time":"2026-01-01T09:30:00.123Z"}`)
	rooms := make([]string, 50)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%03d", i)
	}
	b.Run("single-room", func(b *testing.B) {
		idLine, body := sse.Frames{}.Message(chat.ID{Epoch: "mjuohs00", Seq: 42}, data)
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			buf = append(append(buf[:0], idLine...), body...)
		}
	})
	b.Run("50-room", func(b *testing.B) {
		c := sse.NewCursor(cursor.Codec{}, rooms)
		positions := make([]chat.ID, len(rooms))
		pos := func(j int) chat.ID { return positions[j] }
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		bodies := make([][]byte, len(rooms))
		for i := range rooms {
			_, bodies[i] = sse.Frames{}.Message(chat.ID{Epoch: "mjuohs00", Seq: int64(i + 1)}, data)
		}
		for i := 0; b.Loop(); i++ {
			positions[i%50] = chat.ID{Epoch: "mjuohs00", Seq: int64(i%50 + 1)}
			line, err := c.Line(i%50, pos)
			if err != nil {
				b.Fatal(err)
			}
			buf = append(append(buf[:0], line...), bodies[i%50]...)
		}
	})
}
