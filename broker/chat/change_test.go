package chat

import "testing"

func TestEntryOf(t *testing.T) {
	t.Parallel()
	const msg = `{"id":"k1-3","seq":3,"room":"r","user":"u","text":"t","time":"2026-01-01T00:00:00.000Z","version":2}`
	for _, tt := range []struct {
		name, entry, event, message string
	}{
		{name: "message", entry: msg, event: EventMessage, message: msg},
		{name: "edit", entry: `{"id":"k1-9","event":"edit","message":` + msg + `}`, event: EventEdit, message: msg},
		{name: "delete", entry: `{"id":"k1-9","event":"delete","message":` + msg + `}`, event: EventDelete, message: msg},
		{name: "unknown event", entry: `{"id":"k1-9","event":"react","message":{}}`, event: EventMessage, message: `{"id":"k1-9","event":"react","message":{}}`},
		{name: "cut short", entry: `{"id":"k1-9","event":"edit","message":`, event: EventMessage, message: `{"id":"k1-9","event":"edit","message":`},
		{name: "no id", entry: `{"event":"edit"}`, event: EventMessage, message: `{"event":"edit"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			event, message := EntryOf([]byte(tt.entry))
			if event != tt.event || string(message) != tt.message {
				t.Fatalf("EntryOf = %q, %s; want %q, %s", event, message, tt.event, tt.message)
			}
			if got := IsChange([]byte(tt.entry)); got != (tt.event != EventMessage) {
				t.Fatalf("IsChange = %v", got)
			}
		})
	}
}

func TestVersionOf(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		data string
		want int64
	}{
		{data: `{"id":"k1-1","seq":1,"user":"u","text":"t","time":"x","version":1}`, want: 1},
		{data: `{"id":"k1-1","seq":1,"user":"u","text":"t","time":"x","version":12,"metadata":{"version":7}}`, want: 12},
		// A literal cannot hold ,"version": unescaped: this is text.
		{data: `{"id":"k1-1","seq":1,"user":"u","text":"a\",\"version\":9","time":"x","version":3}`, want: 3},
		{data: `{"id":"k1-1","seq":1}`, want: 1}, // stored before messages had versions
		{data: ``, want: 0},
	} {
		if got := VersionOf([]byte(tt.data)); got != tt.want {
			t.Fatalf("VersionOf(%s) = %d, want %d", tt.data, got, tt.want)
		}
	}
}
