package cursor_test

import (
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker/chat"
)

// BenchmarkSet is the cost per delivery on a 50-room stream: one room's
// position changes and the token is appended to a frame.
func BenchmarkSet(b *testing.B) {
	for _, bc := range []struct {
		name  string
		codec cursor.Codec
	}{{"checksum", cursor.Codec{}}, {"hmac", cursor.NewCodec([]byte("a key shared by every instance"))}} {
		b.Run(bc.name, func(b *testing.B) {
			e, err := bc.codec.NewEncoder(longRooms(50), maxIDs(50))
			if err != nil {
				b.Fatal(err)
			}
			frame := make([]byte, 0, 4096)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := e.Set(i%50, chat.ID{Epoch: "mx2k9c1q7a", Seq: int64(i + 1)}); err != nil {
					b.Fatal(err)
				}
				frame = e.AppendToken(frame[:0])
			}
		})
	}
}

// BenchmarkNewEncoder is the cost of encoding all 50 positions afresh,
// which Set avoids.
func BenchmarkNewEncoder(b *testing.B) {
	rooms, ids := longRooms(50), maxIDs(50)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (cursor.Codec{}).NewEncoder(rooms, ids); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	rooms := longRooms(50)
	e, _ := cursor.Codec{}.NewEncoder(rooms, maxIDs(50))
	token := e.Token()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := (cursor.Codec{}).Decode(token, rooms); err != nil {
			b.Fatal(err)
		}
	}
}
