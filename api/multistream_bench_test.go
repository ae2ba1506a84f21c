package api

import (
	"fmt"
	"log/slog"
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker"
	"roomcast/broker/chat"
)

// BenchmarkDeliveryFrame compares the bytes a stream builds per delivered
// message: a single-room stream writes the frame the hub encoded once for
// every stream of the room, a 50-room stream builds its own frame around
// the composite cursor
// (the id line compositeIDs writes, then the shared frame minus its id).
func BenchmarkDeliveryFrame(b *testing.B) {
	data := []byte(`{"id":"mjuohs00-42","seq":42,"room":"lobby","user":"ada","text":"Hello, room!","time":"2026-01-01T09:30:00.123Z"}`)
	rooms := make([]string, 50)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%03d", i)
	}
	b.Run("single-room", func(b *testing.B) {
		m := &broker.Message{Room: "lobby", ID: chat.ID{Epoch: "mjuohs00", Seq: 42}, Data: data}
		m.Frame = EncodeMessage(m)
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			buf = append(buf[:0], m.Frame...)
		}
	})
	b.Run("50-room", func(b *testing.B) {
		ci := &compositeIDs{codec: cursor.Codec{}, rooms: rooms, index: make(map[string]int), log: slog.New(slog.DiscardHandler)}
		for i, room := range rooms {
			ci.index[room] = i
		}
		positions := func(string) chat.ID { return chat.ID{} }
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		msgs := make([]*broker.Message, len(rooms))
		for i, room := range rooms {
			msgs[i] = &broker.Message{Room: room, ID: chat.ID{Epoch: "mjuohs00", Seq: int64(i + 1)}, Data: data}
			msgs[i].Frame = EncodeMessage(msgs[i])
		}
		for i := 0; b.Loop(); i++ {
			m := msgs[i%50]
			buf = append(append(buf[:0], ci.line(rooms[i%50], m, positions)...), withoutID(m.Frame)...)
		}
	})
}
