package api

import (
	"fmt"
	"testing"

	"roomcast/broker"
	"roomcast/redisscripts"
	"roomcast/redisscripts/cursor"
)

// BenchmarkDeliveryFrame compares the bytes a stream builds per delivered
// message: a single-room stream writes the frame the hub encoded once for
// every stream of the room, a 50-room stream builds its own frame around
// the composite cursor.
func BenchmarkDeliveryFrame(b *testing.B) {
	data := []byte(`{"id":"mjuohs00-42","seq":42,"room":"lobby","user":"ada","text":"Hello, room!","time":"2026-01-01T09:30:00.123Z"}`)
	rooms := make([]string, 50)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("room-%03d", i)
	}
	b.Run("single-room", func(b *testing.B) {
		m := &broker.Message{Room: "lobby", ID: redisscripts.ID{Epoch: "mjuohs00", Seq: 42}, Data: data}
		m.Frame = EncodeMessage(m)
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for b.Loop() {
			buf = append(buf[:0], m.Frame...)
		}
	})
	b.Run("50-room", func(b *testing.B) {
		rc, err := newRoomCursor(nil, cursor.Codec{}, rooms, make([]redisscripts.ID, len(rooms)))
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 0, 4096)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			m := &broker.Message{ID: redisscripts.ID{Epoch: "mjuohs00", Seq: int64(i/50 + 1)}, Data: data}
			if buf, err = rc.deliver(b.Context(), buf[:0], i%50, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
