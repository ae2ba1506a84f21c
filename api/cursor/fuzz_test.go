package cursor_test

import (
	"errors"
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker/chat"
)

// FuzzDecode feeds arbitrary tokens to Decode: it must never panic, must
// refuse with ErrInvalid or accept, and an accepted token must decode to
// positions that a fresh Encoder turns back into the very same token.
func FuzzDecode(f *testing.F) {
	rooms := []string{"a", "b", "lobby"}
	for _, codec := range []cursor.Codec{{}, cursor.NewCodec([]byte("k"))} {
		e, err := codec.NewEncoder(rooms, []chat.ID{{Epoch: "mx2k9c1q7a", Seq: 9}, {}, {Epoch: "1", Seq: 1<<53 - 1}})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(e.Token(), false)
		f.Add(e.Token()[:len(e.Token())-3], true)
	}
	f.Add("", false)
	f.Add("AQAB", false)
	f.Fuzz(func(t *testing.T, token string, keyed bool) {
		codec := cursor.Codec{}
		if keyed {
			codec = cursor.NewCodec([]byte("k"))
		}
		got, err := codec.Decode(token, rooms)
		if err != nil {
			if !errors.Is(err, cursor.ErrInvalid) {
				t.Fatalf("Decode error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// A valid token names rooms by hash; only when it holds exactly
		// the listed rooms, in order, can it be rebuilt from them.
		ids := make([]chat.ID, len(rooms))
		for i, p := range got {
			if p.Known && p.ID.Seq > 0 {
				if id, err := chat.ParseID(p.ID.String()); err != nil || id != p.ID {
					t.Fatalf("decoded position %v is not an id: %v", p.ID, err)
				}
			}
			ids[i] = p.ID
		}
		e, err := codec.NewEncoder(rooms, ids)
		if err != nil {
			t.Fatalf("decoded positions %v do not encode: %v", got, err)
		}
		if all(got) && len(e.Token()) == len(token) && e.Token() != token {
			t.Fatalf("token %q decodes to %v, which encodes to %q", token, got, e.Token())
		}
	})
}

func all(ps []cursor.Position) bool {
	for _, p := range ps {
		if !p.Known {
			return false
		}
	}
	return true
}
