package main

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestLocalURLAcceptsOnlyLoopbackHTTP(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want string // "" when refused
	}{
		{raw: "http://127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{raw: "http://127.0.0.1:8080/base/?q=1#f", want: "http://127.0.0.1:8080/base"},
		{raw: "http://localhost:8080"},
		{raw: "http://10.0.0.1:8080"},
		{raw: "http://192.168.1.5"},
		{raw: "https://127.0.0.1:8080"},
		{raw: "http://user:pw@127.0.0.1:8080"},
		{raw: "http://127.0.0.1.example.com"},
		{raw: "127.0.0.1:8080"},
	} {
		u, err := localURL(tc.raw)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("localURL(%q) = %v, want refused", tc.raw, u)
		case tc.want != "" && err != nil:
			t.Errorf("localURL(%q): %v, want %s", tc.raw, err, tc.want)
		case tc.want != "" && u.String() != tc.want:
			t.Errorf("localURL(%q) = %s, want %s", tc.raw, u, tc.want)
		}
	}
}
