package redisscripts

import (
	"fmt"
	"slices"
	"testing"

	"roomcast/broker/chat"
)

// postN posts n messages to room and returns their ids.
func postN(t *testing.T, store *Store, room string, n int) []chat.ID {
	t.Helper()
	ids := make([]chat.ID, n)
	for i := range ids {
		p, err := store.Post(t.Context(), chat.Post{Room: room, User: "u", Text: fmt.Sprintf("m%d", i+1)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = p.ID
	}
	return ids
}

// seqsOf returns the sequence numbers of a page's messages.
func seqsOf(t *testing.T, page chat.Page) []int64 {
	t.Helper()
	seqs := []int64{}
	for _, m := range page.Messages {
		id, err := chat.IDOf(m)
		if err != nil {
			t.Fatalf("message %s: %v", m, err)
		}
		if got := decodeStored(t, m).Seq; got != id.Seq {
			t.Fatalf("message %s: seq %d, id %v", m, got, id)
		}
		seqs = append(seqs, id.Seq)
	}
	return seqs
}

func span(from, to int64) []int64 {
	s := []int64{}
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestHistoryPages(t *testing.T) {
	t.Parallel()
	store, _, _ := newStore(t, StoreOptions{HistoryMax: 20})
	ids := postN(t, store, "r", 25) // 1-5 trimmed, 6-25 kept
	epoch := ids[0].Epoch
	at := func(seq int64) chat.ID { return chat.ID{Epoch: epoch, Seq: seq} }
	tests := []struct {
		name      string
		room      string
		q         chat.Query
		want      []int64
		more      bool
		reset     string
		firstKept string
	}{
		{name: "latest", q: chat.Query{Direction: chat.Latest, Limit: 10}, want: span(16, 25), more: true},
		{name: "latest all", q: chat.Query{Direction: chat.Latest, Limit: 200}, want: span(6, 25)},
		{name: "latest exactly all", q: chat.Query{Direction: chat.Latest, Limit: 20}, want: span(6, 25)},
		{name: "before", q: chat.Query{Direction: chat.Before, Cursor: at(16), Limit: 10}, want: span(6, 15)},
		{name: "before with more", q: chat.Query{Direction: chat.Before, Cursor: at(17), Limit: 10}, want: span(7, 16), more: true},
		{name: "before oldest", q: chat.Query{Direction: chat.Before, Cursor: at(6), Limit: 10}, want: []int64{}},
		{name: "before trimmed", q: chat.Query{Direction: chat.Before, Cursor: at(3), Limit: 10}, want: []int64{}},
		{name: "before other epoch", q: chat.Query{Direction: chat.Before, Cursor: chat.ID{Epoch: "zz", Seq: 20}, Limit: 10}, want: []int64{}},
		{name: "after", q: chat.Query{Direction: chat.After, Cursor: at(10), Limit: 10}, want: span(11, 20), more: true},
		{name: "after exactly the rest", q: chat.Query{Direction: chat.After, Cursor: at(15), Limit: 10}, want: span(16, 25)},
		{name: "after newest", q: chat.Query{Direction: chat.After, Cursor: at(25), Limit: 10}, want: []int64{}},
		{name: "after last trimmed", q: chat.Query{Direction: chat.After, Cursor: at(5), Limit: 3}, want: span(6, 8), more: true},
		{name: "after trimmed", q: chat.Query{Direction: chat.After, Cursor: at(2), Limit: 3}, want: span(6, 8), more: true,
			reset: chat.ResetTrimmed, firstKept: at(6).String()},
		{name: "after ahead", q: chat.Query{Direction: chat.After, Cursor: at(26), Limit: 3}, want: span(6, 8), more: true,
			reset: chat.ResetAhead, firstKept: at(6).String()},
		{name: "after other epoch", q: chat.Query{Direction: chat.After, Cursor: chat.ID{Epoch: "zz", Seq: 1}, Limit: 30}, want: span(6, 25),
			reset: chat.ResetEpochChanged, firstKept: at(6).String()},
		{name: "unknown room", room: "none", q: chat.Query{Direction: chat.Latest, Limit: 10}, want: []int64{}},
		{name: "unknown room after", room: "none", q: chat.Query{Direction: chat.After, Cursor: at(3), Limit: 10}, want: []int64{},
			reset: chat.ResetEpochChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			room := tt.room
			if room == "" {
				room = "r"
			}
			page, err := store.History(t.Context(), room, tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if got := seqsOf(t, page); !slices.Equal(got, tt.want) {
				t.Fatalf("seqs = %v, want %v", got, tt.want)
			}
			if page.HasMore != tt.more {
				t.Fatalf("HasMore = %v, want %v", page.HasMore, tt.more)
			}
			switch {
			case tt.reset == "" && page.Reset != nil:
				t.Fatalf("Reset = %+v, want none", page.Reset)
			case tt.reset != "" && page.Reset == nil:
				t.Fatalf("no Reset, want %s", tt.reset)
			case tt.reset != "":
				r := page.Reset
				if r.Reason != tt.reset || r.FirstAvailable != tt.firstKept || r.LastEventID != tt.q.Cursor.String() || r.Detail == "" {
					t.Fatalf("Reset = %+v, want reason %s, first available %q, last event id %v",
						r, tt.reset, tt.firstKept, tt.q.Cursor)
				}
			}
		})
	}
}

func TestHistoryAfterRedisLostTheRoom(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	old := postN(t, store, "r", 3)
	if err := rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
	renewed := postN(t, store, "r", 2)
	if renewed[0].Epoch == old[0].Epoch {
		t.Fatalf("epoch %q did not change after Redis lost the room", renewed[0].Epoch)
	}
	if renewed[0].Seq != 1 {
		t.Fatalf("first id after the loss = %v, want seq 1", renewed[0])
	}
	page, err := store.History(t.Context(), "r", chat.Query{Direction: chat.After, Cursor: old[1], Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := seqsOf(t, page); !slices.Equal(got, []int64{1, 2}) {
		t.Fatalf("seqs after an old cursor = %v, want [1 2]", got)
	}
	if page.Reset == nil || page.Reset.Reason != chat.ResetEpochChanged || page.Reset.FirstAvailable != renewed[0].String() {
		t.Fatalf("Reset = %+v, want epoch_changed from %v", page.Reset, renewed[0])
	}
}

func TestHistoryKeepsSurvivingHistoryOfANewEpochClean(t *testing.T) {
	t.Parallel()
	store, _, rdb := newStore(t, StoreOptions{})
	postN(t, store, "r", 3)
	// Redis lost the room's meta but not its history (e.g. eviction): the
	// next post starts a new epoch and must not mix the old messages in.
	if err := rdb.Del(t.Context(), "test:{r}:meta").Err(); err != nil {
		t.Fatal(err)
	}
	ids := postN(t, store, "r", 1)
	page, err := store.History(t.Context(), "r", chat.Query{Direction: chat.Latest, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 {
		t.Fatalf("history = %q, want only the new message %v", page.Messages, ids[0])
	}
}

func TestResetFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cursor       chat.ID
		epoch        string
		last, oldest int64
		reason       string
		first        string
	}{
		{name: "in range", cursor: chat.ID{Epoch: "e", Seq: 5}, epoch: "e", last: 10, oldest: 1},
		{name: "just before oldest", cursor: chat.ID{Epoch: "e", Seq: 4}, epoch: "e", last: 10, oldest: 5},
		{name: "at newest", cursor: chat.ID{Epoch: "e", Seq: 10}, epoch: "e", last: 10, oldest: 5},
		{name: "trimmed", cursor: chat.ID{Epoch: "e", Seq: 3}, epoch: "e", last: 10, oldest: 5, reason: chat.ResetTrimmed, first: "e-5"},
		{name: "ahead", cursor: chat.ID{Epoch: "e", Seq: 11}, epoch: "e", last: 10, oldest: 5, reason: chat.ResetAhead, first: "e-5"},
		{name: "ahead, history lost", cursor: chat.ID{Epoch: "e", Seq: 11}, epoch: "e", last: 10, oldest: 11, reason: chat.ResetAhead},
		{name: "other epoch", cursor: chat.ID{Epoch: "d", Seq: 3}, epoch: "e", last: 10, oldest: 5, reason: chat.ResetEpochChanged, first: "e-5"},
		{name: "history lost", cursor: chat.ID{Epoch: "e", Seq: 3}, epoch: "e", last: 10, oldest: 11, reason: chat.ResetTrimmed},
		{name: "unknown room", cursor: chat.ID{Epoch: "e", Seq: 3}, epoch: "", last: 0, oldest: 0, reason: chat.ResetEpochChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := resetFor(tt.cursor, tt.epoch, tt.last, tt.oldest)
			if tt.reason == "" {
				if r != nil {
					t.Fatalf("resetFor = %+v, want nil", r)
				}
				return
			}
			if r == nil || r.Reason != tt.reason || r.FirstAvailable != tt.first || r.LastEventID != tt.cursor.String() {
				t.Fatalf("resetFor = %+v, want reason %q, first available %q", r, tt.reason, tt.first)
			}
		})
	}
}
