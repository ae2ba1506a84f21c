package cursor_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker/chat"
)

// longRooms returns n distinct room ids of the maximum length, 128.
func longRooms(n int) []string {
	rooms := make([]string, n)
	for i := range rooms {
		rooms[i] = fmt.Sprintf("%03d", i) + strings.Repeat("r", 125)
	}
	return rooms
}

// maxIDs returns n positions with the longest epoch and sequence number.
func maxIDs(n int) []chat.ID {
	ids := make([]chat.ID, n)
	for i := range ids {
		ids[i] = chat.ID{Epoch: "zzzzzzzzzzzz", Seq: 1<<53 - 1}
	}
	return ids
}

func TestTokenSizeAt50Rooms(t *testing.T) {
	for _, tc := range []struct {
		name  string
		codec cursor.Codec
		want  int
	}{
		{name: "checksum", codec: cursor.Codec{}, want: 1610},
		{name: "hmac", codec: cursor.NewCodec([]byte("a key shared by every instance")), want: 1620},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := tc.codec.NewEncoder(longRooms(50), maxIDs(50))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(e.Token()); got != tc.want || got > 4096 {
				t.Fatalf("token length = %d, want %d (at most 4096)", got, tc.want)
			}
			big, err := tc.codec.NewEncoder(longRooms(cursor.MaxRooms), maxIDs(cursor.MaxRooms))
			if err != nil {
				t.Fatal(err)
			}
			if got := len(big.Token()); got > cursor.MaxLen {
				t.Fatalf("token of %d rooms is %d long, more than MaxLen %d", cursor.MaxRooms, got, cursor.MaxLen)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	rooms := []string{"lobby", "support-42", strings.Repeat("x", 128)}
	start := []chat.ID{{}, {Epoch: "mx2k9c1q7a", Seq: 7}, {Epoch: "1", Seq: 0}}
	for _, codec := range []cursor.Codec{{}, cursor.NewCodec([]byte("k"))} {
		e, err := codec.NewEncoder(rooms, start)
		if err != nil {
			t.Fatal(err)
		}
		got, err := codec.Decode(e.Token(), rooms)
		if err != nil {
			t.Fatalf("Decode: %v", err)
		}
		for i := range rooms {
			if !got[i].Known || got[i].ID != start[i] {
				t.Fatalf("room %d = %+v, want %v", i, got[i], start[i])
			}
		}
		next := chat.ID{Epoch: "zzzzzzzzzzzz", Seq: 1<<53 - 1}
		if err := e.Set(0, next); err != nil {
			t.Fatal(err)
		}
		got, err = codec.Decode(e.Token(), rooms)
		if err != nil || got[0].ID != next || got[1].ID != start[1] {
			t.Fatalf("after Set: %+v, %v", got, err)
		}
		if string(e.AppendToken([]byte("id: "))) != "id: "+e.Token() {
			t.Fatalf("AppendToken differs from Token")
		}
	}
}

// A client that changes its rooms sends its last token with the new list:
// carried-over rooms keep their positions, new ones are unknown.
func TestDecodeWithChangedRooms(t *testing.T) {
	var codec cursor.Codec
	e, err := codec.NewEncoder([]string{"a", "b", "c"},
		[]chat.ID{{Epoch: "e1", Seq: 1}, {Epoch: "e2", Seq: 2}, {Epoch: "e3", Seq: 3}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := codec.Decode(e.Token(), []string{"d", "c", "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := []cursor.Position{{}, {ID: chat.ID{Epoch: "e3", Seq: 3}, Known: true}, {ID: chat.ID{Epoch: "e1", Seq: 1}, Known: true}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Decode = %v, want %v", got, want)
	}
}

// Incremental updates give exactly the token a fresh Encoder makes.
func TestSetMatchesFreshEncoding(t *testing.T) {
	for _, codec := range []cursor.Codec{{}, cursor.NewCodec([]byte("k"))} {
		rooms := longRooms(7)
		ids := make([]chat.ID, len(rooms))
		e, err := codec.NewEncoder(rooms, ids)
		if err != nil {
			t.Fatal(err)
		}
		for step := range 50 {
			i := step * 3 % len(rooms)
			ids[i] = chat.ID{Epoch: "abc", Seq: int64(step + 1)}
			if err := e.Set(i, ids[i]); err != nil {
				t.Fatal(err)
			}
			fresh, err := codec.NewEncoder(rooms, ids)
			if err != nil {
				t.Fatal(err)
			}
			if e.Token() != fresh.Token() {
				t.Fatalf("step %d: incremental token differs from a fresh one", step)
			}
		}
	}
}

func TestEncoderRefuses(t *testing.T) {
	var codec cursor.Codec
	for _, tc := range []struct {
		name  string
		rooms []string
		ids   []chat.ID
	}{
		{name: "no rooms"},
		{name: "too many rooms", rooms: longRooms(cursor.MaxRooms + 1), ids: make([]chat.ID, cursor.MaxRooms+1)},
		{name: "fewer ids than rooms", rooms: []string{"a", "b"}, ids: make([]chat.ID, 1)},
		{name: "duplicate room", rooms: []string{"a", "a"}, ids: make([]chat.ID, 2)},
		{name: "epoch with a capital", rooms: []string{"a"}, ids: []chat.ID{{Epoch: "Ab", Seq: 1}}},
		{name: "epoch of 13 digits", rooms: []string{"a"}, ids: []chat.ID{{Epoch: "1234567890123", Seq: 1}}},
		{name: "seq without epoch", rooms: []string{"a"}, ids: []chat.ID{{Seq: 1}}},
		{name: "negative seq", rooms: []string{"a"}, ids: []chat.ID{{Epoch: "a", Seq: -1}}},
		{name: "seq past 2^53", rooms: []string{"a"}, ids: []chat.ID{{Epoch: "a", Seq: 1 << 53}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := codec.NewEncoder(tc.rooms, tc.ids); err == nil {
				t.Fatalf("NewEncoder succeeded, want an error")
			}
		})
	}
	e, _ := codec.NewEncoder([]string{"a"}, []chat.ID{{}})
	before := e.Token()
	if e.Set(1, chat.ID{}) == nil || e.Set(0, chat.ID{Epoch: "A", Seq: 1}) == nil {
		t.Fatalf("Set accepted a bad index or epoch")
	}
	if e.Token() != before {
		t.Fatalf("a refused Set changed the token")
	}
}

func TestDecodeRefuses(t *testing.T) {
	var plain cursor.Codec
	keyed := cursor.NewCodec([]byte("key one"))
	rooms := []string{"a", "b"}
	ids := []chat.ID{{Epoch: "e", Seq: 5}, {}}
	good, _ := plain.NewEncoder(rooms, ids)
	signed, _ := keyed.NewEncoder(rooms, ids)
	token := good.Token()
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	for _, tc := range []struct {
		name  string
		codec cursor.Codec
		token string
	}{
		{name: "empty", codec: plain, token: ""},
		{name: "a message id", codec: plain, token: "mx2k9c1q7a-1"},
		{name: "truncated", codec: plain, token: token[:len(token)-1]},
		{name: "cut at an entry", codec: plain, token: token[:4+32]},
		{name: "one character changed", codec: plain, token: flip(token, 20)},
		{name: "trailer changed", codec: plain, token: flip(token, len(token)-2)},
		{name: "extra character", codec: plain, token: token + "A"},
		{name: "padding", codec: plain, token: token + "=="},
		{name: "standard base64", codec: plain, token: strings.ReplaceAll(token, "_", "/") + "/"},
		{name: "line break", codec: plain, token: token[:10] + "\n" + token[10:]},
		{name: "too long", codec: plain, token: strings.Repeat("A", cursor.MaxLen+4)},
		{name: "checksummed token to a keyed server", codec: keyed, token: token},
		{name: "signed token to an open server", codec: plain, token: signed.Token()},
		{name: "signed with another key", codec: cursor.NewCodec([]byte("key two")), token: signed.Token()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.codec.Decode(tc.token, rooms)
			if !errors.Is(err, cursor.ErrInvalid) {
				t.Fatalf("Decode = %v, %v; want ErrInvalid", got, err)
			}
		})
	}
}
