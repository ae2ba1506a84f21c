package broker

import "testing"

func TestSlotOf(t *testing.T) {
	for _, tt := range []struct {
		key  string
		want uint16
	}{
		{key: "foo", want: 12182},
		{key: "bar", want: 5061},
		{key: "{foo}:ch", want: 12182},      // the hash tag decides
		{key: "x{}y", want: slotOf("x{}y")}, // an empty tag is no tag
		{key: "a{bar}{foo}", want: 5061},    // the first tag counts
	} {
		if got := slotOf(tt.key); got != tt.want {
			t.Errorf("slotOf(%q) = %d, want %d", tt.key, got, tt.want)
		}
	}
}
