package redisscripts

import "testing"

func TestShardChannel(t *testing.T) {
	k := NewKeys("app:")
	if got, want := k.ShardChannel("r.1"), "app:{r.1}:ch"; got != want {
		t.Fatalf("ShardChannel = %q, want %q", got, want)
	}
	if got, want := k.ShardChannel("r.1")[len("app:"):len("app:{r.1}")], k.meta("r.1")[len("app:"):len("app:{r.1}")]; got != want {
		t.Fatalf("hash tag of the channel %q differs from the room's keys' %q", got, want)
	}
	if room, ok := k.RoomFromChannel(k.ShardChannel("r.1")); !ok || room != "r.1" {
		t.Fatalf("RoomFromChannel(shard channel) = %q, %v", room, ok)
	}
	for _, ch := range []string{k.ShardProbeChannel("x"), "app:{a*b}:ch", "app:{}:ch", "other:{r}:ch", "app:{r}:chx", k.meta("r")} {
		if room, ok := k.RoomFromChannel(ch); ok {
			t.Fatalf("RoomFromChannel(%q) = %q, true; want false", ch, room)
		}
	}
}
