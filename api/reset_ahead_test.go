package api_test

import (
	"encoding/json"
	"net/url"
	"testing"

	"roomcast/api/cursor"
	"roomcast/broker/chat"
)

// TestResumeAheadOfTheRoom resumes from a position of the room's epoch
// beyond its last message, which the room never gave out: every way to
// resume answers a reset with the reason ahead, not epoch_changed, then the
// retained messages.
func TestResumeAheadOfTheRoom(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverConfig{})
	posted := s.postRawMany(t, "r", 2)
	last, err := chat.ParseID(posted[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	ahead := chat.ID{Epoch: last.Epoch, Seq: last.Seq + 5}
	type reset struct {
		Room           string `json:"room"`
		Reason         string `json:"reason"`
		LastEventID    string `json:"last_event_id"`
		FirstAvailable string `json:"first_available_id"`
	}
	want := reset{Reason: chat.ResetAhead, LastEventID: ahead.String(), FirstAvailable: posted[0].ID}

	t.Run("history after", func(t *testing.T) {
		page := s.historyPage(t, "r", "?after="+ahead.String())
		if r := page.Reset; r == nil || r.Reason != want.Reason || r.LastEventID != want.LastEventID || r.FirstAvailable != want.FirstAvailable {
			t.Fatalf("reset = %+v, want %+v", r, want)
		}
		if len(page.Messages) != 2 || page.Messages[0].ID != posted[0].ID {
			t.Fatalf("messages %+v, want the room's two", page.Messages)
		}
	})
	t.Run("stream", func(t *testing.T) {
		c := s.openStream(t, "/rooms/r/stream", "Last-Event-ID", ahead.String())
		c.awaitOpen()
		ev := c.next()
		var got reset
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil || ev.Event != "reset" || got != want {
			t.Fatalf("first event %+v, want a reset %+v", ev, want)
		}
		wantReplay(t, c, posted)
	})
	t.Run("multi-room stream", func(t *testing.T) {
		enc, err := cursor.Codec{}.NewEncoder([]string{"r"}, []chat.ID{ahead})
		if err != nil {
			t.Fatal(err)
		}
		c := s.openStream(t, "/stream?rooms=r&last_event_id="+url.QueryEscape(enc.Token()))
		c.awaitOpen()
		ev := c.next()
		var got reset
		want := want
		want.Room = "r"
		if err := json.Unmarshal([]byte(ev.Data), &got); err != nil || ev.Event != "reset" || got != want {
			t.Fatalf("first event %+v, want a reset %+v", ev, want)
		}
		for _, p := range posted {
			if m, _ := c.nextRoomMessage(); m.ID != p.ID {
				t.Fatalf("message %s, want %s", m.ID, p.ID)
			}
		}
	})
}
