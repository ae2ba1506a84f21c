package hook

import "testing"

func TestParseVerdict(t *testing.T) {
	for _, tc := range []struct {
		answer string
		ok     bool
		want   string // accept, reject, rewrite
	}{
		{`{"action":"accept"}`, true, "accept"},
		{`{"action":"accept","text":"x"}`, true, "rewrite"},
		{`{"action":"accept","metadata":null}`, true, "rewrite"},
		{`{"action":"reject"}`, true, "reject"},
		{`{"action":"reject","reason":"spam"}`, true, "reject"},
		{`{"action":"reject","text":"x"}`, false, ""},
		{`{"action":"accept","reason":"x"}`, false, ""},
		{`{"action":"accept","colour":"red"}`, false, ""},
		{`{"action":"Accept"}`, false, ""},
		{`{"action":1}`, false, ""},
		{`{"text":"x"}`, false, ""},
		{`{"action":"accept","text":1}`, false, ""},
		{`null`, false, ""},
		{`[]`, false, ""},
		{`yes`, false, ""},
		{``, false, ""},
	} {
		v, err := parseVerdict([]byte(tc.answer))
		if (err == nil) != tc.ok {
			t.Fatalf("parseVerdict(%s) error %v, want ok %v", tc.answer, err, tc.ok)
		}
		if !tc.ok {
			continue
		}
		got := "reject"
		if v.Accept {
			got = "accept"
			if v.Text != nil || v.Metadata != nil {
				got = "rewrite"
			}
		}
		if got != tc.want {
			t.Fatalf("parseVerdict(%s) = %+v, want %s", tc.answer, v, tc.want)
		}
	}
}

func TestApplies(t *testing.T) {
	c := New(Options{Rooms: []string{"support-*", "lobby"}})
	for room, want := range map[string]bool{"support-": true, "support-1": true, "lobby": true, "lobby2": false, "support": false} {
		if got := c.Applies(room); got != want {
			t.Fatalf("Applies(%q) = %v, want %v", room, got, want)
		}
	}
}
