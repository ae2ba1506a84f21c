package redisscripts

import (
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker/chat"
	"roomcast/redisscripts/redistest"
)

func TestValidRoom(t *testing.T) {
	t.Parallel()
	for _, room := range []string{"a", "lobby", "A.b_c-9", "..", strings.Repeat("x", 128)} {
		if !chat.ValidRoom(room) {
			t.Fatalf("ValidRoom(%q) = false, want true", room)
		}
	}
	for _, room := range []string{
		"", strings.Repeat("x", 129), "a*", "a?", "a[b", "a]", "{a}", "a{", "a}", "a:b", "a/b", "a b", "a\tb",
		"a\nb", "a\\b", "é", "a\x00", "a%2Fb", "a\"b",
	} {
		if chat.ValidRoom(room) {
			t.Fatalf("ValidRoom(%q) = true, want false", room)
		}
	}
}

func TestKeysNames(t *testing.T) {
	t.Parallel()
	k := NewKeys("app:")
	if got, want := k.meta("r"), "app:{r}:meta"; got != want {
		t.Fatalf("meta = %q, want %q", got, want)
	}
	if got, want := k.Channel("r"), "app:room:r"; got != want {
		t.Fatalf("Channel = %q, want %q", got, want)
	}
	if room, ok := k.RoomFromChannel("app:room:r.1"); !ok || room != "r.1" {
		t.Fatalf("RoomFromChannel(room channel) = %q, %v", room, ok)
	}
	for _, ch := range []string{k.ProbeChannel("x"), "other:room:r", "app:room:", "app:room:a*b", "app:r"} {
		if room, ok := k.RoomFromChannel(ch); ok {
			t.Fatalf("RoomFromChannel(%q) = %q, true; want false", ch, room)
		}
	}
}

// TestPatternMatchesOnlyItsDeployment checks in Redis that the PSUBSCRIBE
// pattern of a prefix holding glob characters matches its own room and
// probe channels and no other deployment's.
func TestPatternMatchesOnlyItsDeployment(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := t.Context()
	k := NewKeys(`a*b?[c]\:`)
	ps := rdb.PSubscribe(ctx, k.Pattern())
	defer ps.Close()
	if _, err := ps.ReceiveTimeout(ctx, 5*time.Second); err != nil {
		t.Fatalf("psubscribe: %v", err)
	}
	tests := []struct {
		channel string
		want    int64
	}{
		{channel: k.Channel("r"), want: 1},
		{channel: k.ProbeChannel("p"), want: 1},
		{channel: NewKeys(`aXXbY[c]\:`).Channel("r"), want: 0},
		{channel: NewKeys(`a*b?c\:`).Channel("r"), want: 0},
		{channel: NewKeys("roomcast:").Channel("r"), want: 0},
	}
	for _, tt := range tests {
		got, err := rdb.Publish(ctx, tt.channel, "x").Result()
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Fatalf("PUBLISH %q reached %d subscribers, want %d", tt.channel, got, tt.want)
		}
	}
	var _ redis.UniversalClient = rdb
}

// TestRoomOfMatchesRoomFromChannel holds the allocation-free RoomOf to the
// definition of a room channel, and to allocating nothing.
func TestRoomOfMatchesRoomFromChannel(t *testing.T) {
	for _, prefix := range []string{"", "roomcast:", "a*b:"} {
		k := NewKeys(prefix)
		for _, channel := range []string{
			k.Channel("lobby"), k.Channel("a.b_c-D9"), k.Channel(strings.Repeat("x", 128)), k.Channel(strings.Repeat("x", 129)),
			k.ProbeChannel("p1"), k.Channel(""), k.Channel("a b"), k.Channel("é"), prefix + "room", prefix, "other:room:x", "",
			k.ShardChannel("lobby"), k.ShardChannel("a.b_c-D9"), k.ShardChannel(strings.Repeat("x", 128)),
			k.ShardChannel(strings.Repeat("x", 129)), k.ShardChannel(""), k.ShardChannel("a}b"), k.ShardChannel("a b"),
			k.ShardProbeChannel("p1"), prefix + "{lobby}", prefix + "{lobby}:c", prefix + "{}:ch", prefix + "{:ch",
			prefix + "room:{lobby}:ch", "other:{lobby}:ch",
		} {
			wantRoom, wantOK := k.RoomFromChannel(channel)
			gotRoom, gotOK := k.RoomOf(channel)
			if gotOK != wantOK || (wantOK && gotRoom != wantRoom) {
				t.Fatalf("RoomOf(%q) = %q, %v; want %q, %v", channel, gotRoom, gotOK, wantRoom, wantOK)
			}
		}
		for _, channel := range []string{k.Channel("lobby"), k.ShardChannel("lobby")} {
			if n := testing.AllocsPerRun(100, func() { _, _ = k.RoomOf(channel) }); n != 0 {
				t.Fatalf("RoomOf(%q) allocates %v times, want 0", channel, n)
			}
		}
	}
}
