package api

import (
	"testing"

	"roomcast/broker"
	"roomcast/broker/chat"
)

// TestFramesForStreamsWithTheirOwnIDs checks the encoding a stream of
// several rooms relies on: the shared frame minus its id field, and
// ephemeral events, which have none.
func TestFramesForStreamsWithTheirOwnIDs(t *testing.T) {
	m := &broker.Message{ID: chat.ID{Epoch: "mabc", Seq: 7}, Data: []byte(`{"text":"hi"}`)}
	frame := EncodeMessage(m)
	if got, want := string(frame), "id: mabc-7\nevent: message\ndata: {\"text\":\"hi\"}\n\n"; got != want {
		t.Fatalf("frame = %q, want %q", got, want)
	}
	if got, want := string(withoutID(frame)), "event: message\ndata: {\"text\":\"hi\"}\n\n"; got != want {
		t.Fatalf("withoutID = %q, want %q", got, want)
	}
	event := EncodeMessage(&broker.Message{Event: "typing", Data: []byte(`{"user":"ann"}`)})
	if got, want := string(event), "event: typing\ndata: {\"user\":\"ann\"}\n\n"; got != want {
		t.Fatalf("ephemeral frame = %q, want %q", got, want)
	}
	if got := string(withoutID(event)); got != string(event) {
		t.Fatalf("withoutID changed a frame without id: %q", got)
	}
}
