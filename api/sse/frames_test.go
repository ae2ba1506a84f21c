package sse_test

import (
	"testing"

	"roomcast/api/sse"
	"roomcast/broker/chat"
)

// TestFramesForStreamsWithTheirOwnIDs checks the encoding a stream of
// several rooms relies on: a message frame cut after its id line, so that
// the rest can follow another id line, and ephemeral events, which have
// no id.
func TestFramesForStreamsWithTheirOwnIDs(t *testing.T) {
	idLine, body := sse.Frames{}.Message(chat.ID{Epoch: "mabc", Seq: 7}, []byte(`{"text":"hi"}`))
	if got, want := string(idLine)+string(body), "id: mabc-7\nevent: message\ndata: {\"text\":\"hi\"}\n\n"; got != want {
		t.Fatalf("frame = %q, want %q", got, want)
	}
	if got, want := string(body), "event: message\ndata: {\"text\":\"hi\"}\n\n"; got != want {
		t.Fatalf("body = %q, want %q", got, want)
	}
	if cap(idLine) != len(idLine) {
		t.Fatalf("id line has room to grow into the body: cap %d, len %d", cap(idLine), len(idLine))
	}
	event := sse.Frames{}.Event("typing", []byte(`{"user":"ann"}`))
	if got, want := string(event), "event: typing\ndata: {\"user\":\"ann\"}\n\n"; got != want {
		t.Fatalf("ephemeral frame = %q, want %q", got, want)
	}
}

func TestResetNamesItsRoomInStreamsOfSeveral(t *testing.T) {
	r := &chat.Reset{Reason: chat.ResetTrimmed, Detail: "gone", LastEventID: "ma-1"}
	for _, tt := range []struct {
		name, room, want string
	}{
		{name: "one room", room: "",
			want: "event: reset\ndata: {\"reason\":\"trimmed\",\"detail\":\"gone\",\"last_event_id\":\"ma-1\"}\n\n"},
		{name: "several rooms", room: "lobby",
			want: "event: reset\ndata: {\"room\":\"lobby\",\"reason\":\"trimmed\",\"detail\":\"gone\",\"last_event_id\":\"ma-1\"}\n\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(sse.Frames{}.Reset(tt.room, r)); got != tt.want {
				t.Fatalf("Reset(%q) = %q, want %q", tt.room, got, tt.want)
			}
		})
	}
}

// TestFramesOfChanges: a change entry is an edit or delete event at the
// change's position whose data is the message it carries.
func TestFramesOfChanges(t *testing.T) {
	const msg = `{"id":"mabc-3","seq":3,"text":"hi!","version":2}`
	for _, event := range []string{"edit", "delete"} {
		idLine, body := sse.Frames{}.Message(chat.ID{Epoch: "mabc", Seq: 9},
			[]byte(`{"id":"mabc-9","event":"`+event+`","message":`+msg+`}`))
		if got, want := string(idLine)+string(body), "id: mabc-9\nevent: "+event+"\ndata: "+msg+"\n\n"; got != want {
			t.Fatalf("frame = %q, want %q", got, want)
		}
	}
}
