package redisscripts

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"roomcast/broker/chat"
)

func postAs(t *testing.T, s *Store, room, user, text string) chat.ID {
	t.Helper()
	posted, err := s.Post(t.Context(), chat.Post{Room: room, User: user, Text: text})
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	return posted.ID
}

func readState(t *testing.T, s *Store, user, room string) chat.ReadState {
	t.Helper()
	states, err := s.ReadStates(t.Context(), user, []string{room})
	if err != nil {
		t.Fatalf("ReadStates: %v", err)
	}
	return states[0]
}

func TestMarkRead(t *testing.T) {
	t.Parallel()
	s, _, _ := newStore(t, StoreOptions{ReadReceiptsMaxWatchers: 100})
	ctx := t.Context()
	var ids []chat.ID
	for i := range 5 {
		ids = append(ids, postAs(t, s, "r", "ann", fmt.Sprint("m", i)))
	}
	if st := readState(t, s, "bob", "r"); st.LastRead != (chat.ID{}) || st.Unread != 5 {
		t.Fatalf("bob before any mark = %+v, want no marker and 5 unread", st)
	}
	if st := readState(t, s, "ann", "r"); st.LastRead != ids[4] || st.Unread != 0 {
		t.Fatalf("ann, who posted all = %+v, want marker %v and 0 unread", st, ids[4])
	}
	mark, err := s.MarkRead(ctx, "r", "bob", ids[2])
	if err != nil || mark.LastRead != ids[2] || mark.Unread != 2 || !mark.Moved {
		t.Fatalf("MarkRead(3rd) = %+v, %v; want at %v, 2 unread, moved", mark, err, ids[2])
	}
	mark, err = s.MarkRead(ctx, "r", "bob", ids[0])
	if err != nil || mark.LastRead != ids[2] || mark.Unread != 2 || mark.Moved {
		t.Fatalf("MarkRead(older) = %+v, %v; want it left at %v, not moved", mark, err, ids[2])
	}
	// Bob's own post moves his marker past ann's messages before it.
	own := postAs(t, s, "r", "bob", "mine")
	if st := readState(t, s, "bob", "r"); st.LastRead != own || st.Unread != 0 {
		t.Fatalf("bob after posting = %+v, want marker %v and 0 unread", st, own)
	}
	if st := readState(t, s, "ann", "r"); st.Unread != 1 || string(st.LastMessage) == "" {
		t.Fatalf("ann after bob's post = %+v, want 1 unread and a last message", st)
	}
	rooms, more, err := s.UserRooms(ctx, "bob", "", 10)
	if err != nil || more || len(rooms) != 1 || rooms[0] != "r" {
		t.Fatalf("UserRooms(bob) = %v, %v, %v; want [r]", rooms, more, err)
	}
}

func TestMarkReadRefusals(t *testing.T) {
	t.Parallel()
	s, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	id := postAs(t, s, "r", "ann", "hello")
	before := dumpKeys(t, s, "r")
	for _, tc := range []struct {
		name string
		room string
		id   chat.ID
		want error
	}{
		{name: "EmptyRoom", room: "nobody-posted", id: id, want: chat.ErrEmptyRoom},
		{name: "OtherEpoch", room: "r", id: chat.ID{Epoch: "zz", Seq: 1}, want: chat.ErrUnknownMessage},
		{name: "Ahead", room: "r", id: chat.ID{Epoch: id.Epoch, Seq: 2}, want: chat.ErrUnknownMessage},
	} {
		if _, err := s.MarkRead(ctx, tc.room, "bob", tc.id); !errors.Is(err, tc.want) {
			t.Errorf("%s: MarkRead = %v, want %v", tc.name, err, tc.want)
		}
	}
	if after := dumpKeys(t, s, "r"); after != before {
		t.Fatalf("refused marks changed the room:\nbefore %s\nafter  %s", before, after)
	}
	if n, err := rdb.Exists(ctx, s.keys.userRooms("bob"), s.keys.read("nobody-posted")).Result(); err != nil || n != 0 {
		t.Fatalf("refused marks left %d keys (%v), want none", n, err)
	}
}

// dumpKeys is the read state of room as text, for comparing before and
// after a refusal.
func dumpKeys(t *testing.T, s *Store, room string) string {
	t.Helper()
	ctx := context.Background()
	read, err := s.rdb.HGetAll(ctx, s.keys.read(room)).Result()
	if err != nil {
		t.Fatal(err)
	}
	live, err := s.rdb.ZRange(ctx, s.keys.live(room), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(read, live)
}

// TestUnreadTrimmedWithHistory: unread counts retained messages only, and
// the live set is trimmed with the history, so it never outgrows it.
func TestUnreadTrimmedWithHistory(t *testing.T) {
	t.Parallel()
	s, _, rdb := newStore(t, StoreOptions{HistoryMax: 3})
	for i := range 10 {
		postAs(t, s, "r", "ann", fmt.Sprint("m", i))
	}
	if st := readState(t, s, "bob", "r"); st.Unread != 3 {
		t.Fatalf("unread = %d, want 3 (the retained messages)", st.Unread)
	}
	if n, err := rdb.ZCard(t.Context(), s.keys.live("r")).Result(); err != nil || n != 3 {
		t.Fatalf("live set holds %d (%v), want 3", n, err)
	}
}

// TestReadStateNewEpoch: a room whose state Redis lost starts without
// markers, as their seqs name messages of the old epoch.
func TestReadStateNewEpoch(t *testing.T) {
	t.Parallel()
	s, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	postAs(t, s, "r", "ann", "old")
	postAs(t, s, "r", "bob", "old too")
	if err := rdb.Del(ctx, s.keys.meta("r"), s.keys.history("r")).Err(); err != nil {
		t.Fatal(err)
	}
	postAs(t, s, "r", "ann", "new")
	if st := readState(t, s, "bob", "r"); st.LastRead != (chat.ID{}) || st.Unread != 1 {
		t.Fatalf("bob in the new epoch = %+v, want no marker and 1 unread", st)
	}
}

// TestReadStatesMissingScript: a server without the script loaded (new or
// flushed) is answered through EVAL.
func TestReadStatesMissingScript(t *testing.T) {
	t.Parallel()
	s, _, rdb := newStore(t, StoreOptions{})
	postAs(t, s, "a", "ann", "x")
	postAs(t, s, "b", "ann", "y")
	if err := rdb.ScriptFlush(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	states, err := s.ReadStates(t.Context(), "bob", []string{"a", "b", "none"})
	if err != nil {
		t.Fatal(err)
	}
	if states[0].Unread != 1 || states[1].Unread != 1 || states[2].Unread != 0 || states[2].LastMessage != nil {
		t.Fatalf("states = %+v", states)
	}
}
