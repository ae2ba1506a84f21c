package sse_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"roomcast/api/sse"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAppendEvent(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		event string
		data  string
		want  string
	}{
		{name: "all fields", id: "k3j-7", event: "message", data: `{"a":1}`,
			want: "id: k3j-7\nevent: message\ndata: {\"a\":1}\n\n"},
		{name: "no id", event: "reset", data: "x", want: "event: reset\ndata: x\n\n"},
		{name: "no event", id: "1", data: "x", want: "id: 1\ndata: x\n\n"},
		{name: "data only", data: "x", want: "data: x\n\n"},
		{name: "empty data", id: "1", want: "id: 1\ndata: \n\n"},
		{name: "LF in data", data: "a\nb", want: "data: a\ndata: b\n\n"},
		{name: "CRLF in data", data: "a\r\nb", want: "data: a\ndata: b\n\n"},
		{name: "CR in data", data: "a\rb", want: "data: a\ndata: b\n\n"},
		{name: "LF CR is two breaks", data: "a\n\rb", want: "data: a\ndata: \ndata: b\n\n"},
		{name: "trailing LF", data: "a\n", want: "data: a\ndata: \n\n"},
		{name: "only breaks", data: "\r\n\r\n", want: "data: \ndata: \ndata: \n\n"},
		{name: "data looking like fields", data: "x\nid: 9\nevent: evil\n\ndata: y",
			want: "data: x\ndata: id: 9\ndata: event: evil\ndata: \ndata: data: y\n\n"},
		{name: "NUL in data kept", data: "a\x00b", want: "data: a\x00b\n\n"},
		{name: "LF in id", id: "1\n2", data: "x", want: "id: 12\ndata: x\n\n"},
		{name: "CR in id", id: "1\r2", data: "x", want: "id: 12\ndata: x\n\n"},
		{name: "CRLF in id", id: "1\r\n2", data: "x", want: "id: 12\ndata: x\n\n"},
		{name: "NUL in id", id: "1\x002", data: "x", want: "id: 12\ndata: x\n\n"},
		{name: "breaks and NUL in event", event: "me\r\nss\x00a\rg\ne", data: "x",
			want: "event: message\ndata: x\n\n"},
		{name: "injection through id", id: "1\n\nevent: evil\ndata: boom", data: "x",
			want: "id: 1event: evildata: boom\ndata: x\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(sse.AppendEvent(nil, tt.id, tt.event, []byte(tt.data)))
			if got != tt.want {
				t.Fatalf("AppendEvent(%q, %q, %q) = %q, want %q", tt.id, tt.event, tt.data, got, tt.want)
			}
			events := parseStream(t, got)
			if len(events) != 1 {
				t.Fatalf("a client reads %d events from %q, want 1", len(events), got)
			}
			if want := strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(tt.data); events[0].data != want {
				t.Fatalf("a client reads data %q, want %q", events[0].data, want)
			}
		})
	}
}

func TestAppendEventAppends(t *testing.T) {
	dst := []byte("data: a\n\n")
	got := string(sse.AppendEvent(dst, "2", "message", []byte("b")))
	if want := "data: a\n\nid: 2\nevent: message\ndata: b\n\n"; got != want {
		t.Fatalf("AppendEvent after an event = %q, want %q", got, want)
	}
}

func TestAppendComment(t *testing.T) {
	tests := []struct {
		text string
		want string
	}{
		{text: "ping", want: ": ping\n\n"},
		{text: "", want: ": \n\n"},
		{text: "a\nb", want: ": ab\n\n"},
		{text: "a\r\nb\rc", want: ": abc\n\n"},
		{text: "a\x00b", want: ": ab\n\n"},
		{text: "x\n\ndata: evil", want: ": xdata: evil\n\n"},
	}
	for _, tt := range tests {
		got := string(sse.AppendComment(nil, tt.text))
		if got != tt.want {
			t.Fatalf("AppendComment(%q) = %q, want %q", tt.text, got, tt.want)
		}
		if events := parseStream(t, got); len(events) != 0 {
			t.Fatalf("a client reads events %+v from comment %q, want none", events, got)
		}
	}
}

func TestAppendRetry(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{ms: 0, want: "retry: 0\n\n"},
		{ms: 1, want: "retry: 1\n\n"},
		{ms: 2000, want: "retry: 2000\n\n"},
		{ms: 86_400_000, want: "retry: 86400000\n\n"},
	}
	for _, tt := range tests {
		if got := string(sse.AppendRetry(nil, tt.ms)); got != tt.want {
			t.Fatalf("AppendRetry(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
	if got, want := string(sse.AppendRetry([]byte(": x\n\n"), 5)), ": x\n\nretry: 5\n\n"; got != want {
		t.Fatalf("AppendRetry after a comment = %q, want %q", got, want)
	}
}

// parsedEvent is an event as a browser dispatches it.
type parsedEvent struct {
	id, event, data string
}

// parseStream interprets an event stream as the HTML standard's parsing
// rules do, so that the tests check what a client sees, not only bytes.
func parseStream(t *testing.T, stream string) []parsedEvent {
	t.Helper()
	lines := strings.Split(strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(stream), "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("stream %q does not end with a line break", stream)
	}
	lines = lines[:len(lines)-1]
	var events []parsedEvent
	var cur parsedEvent
	var data []string
	hasData := false
	for _, line := range lines {
		if line == "" {
			if hasData {
				cur.data = strings.Join(data, "\n")
				events = append(events, cur)
			}
			cur, data, hasData = parsedEvent{}, nil, false
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			if strings.Contains(value, "\x00") {
				t.Fatalf("id field %q holds NUL, which clients ignore", value)
			}
			cur.id = value
		case "event":
			cur.event = value
		case "data":
			data, hasData = append(data, value), true
		case "retry":
		default:
			t.Fatalf("unexpected field %q in stream %q", field, stream)
		}
	}
	if len(data) > 0 || cur != (parsedEvent{}) {
		t.Fatalf("stream %q ends inside an event", stream)
	}
	return events
}
