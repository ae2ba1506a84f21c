package auth_test

import (
	"strings"
	"testing"

	"roomcast/api/auth"
)

func TestParseAPIKeys(t *testing.T) {
	a, b := strings.Repeat("a", 32), strings.Repeat("b", 40)
	keys, err := auth.ParseAPIKeys([]string{a, " " + b + " ", ""})
	if err != nil {
		t.Fatal(err)
	}
	if keys.Len() != 2 {
		t.Fatalf("Len = %d, want 2", keys.Len())
	}
	for presented, want := range map[string]int{a: 1, b: 2, a + "x": 0, "": 0, a[:31]: 0, " " + b: 0} {
		if got := keys.Match(presented); got != want {
			t.Errorf("Match(%q) = %d, want %d", presented, got, want)
		}
	}
	if got := (auth.APIKeys{}).Match(a); got != 0 {
		t.Errorf("zero APIKeys Match = %d, want 0", got)
	}

	short := "short-secret-value"
	_, err = auth.ParseAPIKeys([]string{a, short})
	if err == nil {
		t.Fatal("a key of 18 bytes was accepted")
	}
	if want := "key 2 is 18 bytes: want at least 32"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if strings.Contains(err.Error(), short) {
		t.Errorf("the error %q shows the key", err)
	}
}

func TestServerClaims(t *testing.T) {
	c := auth.ServerClaims(2)
	if !c.Server() || c.Key != 2 || c.Subject != "" || !c.ValidUntil.IsZero() {
		t.Fatalf("ServerClaims(2) = %+v", c)
	}
	if !c.Rooms.CanModerate("any") || !c.Rooms.CanRead("any") || !c.Rooms.CanWrite("any") {
		t.Fatalf("ServerClaims rooms = %+v, want all", c.Rooms)
	}
	if (auth.Claims{Subject: "ann"}).Server() {
		t.Fatal("a token's claims say Server")
	}
}
