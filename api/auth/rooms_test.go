package auth_test

import (
	"slices"
	"testing"

	"roomcast/api/auth"
)

func TestRoomsMatch(t *testing.T) {
	r := auth.Rooms{Read: []string{"support-*", "lobby"}, Write: []string{"support-42", "*"}}
	onlyRead := auth.Rooms{Read: []string{"*"}}
	for _, tc := range []struct {
		rooms     auth.Rooms
		room      string
		read, wrt bool
	}{
		{rooms: r, room: "support-1", read: true, wrt: true},
		{rooms: r, room: "support-", read: true, wrt: true},
		{rooms: r, room: "support", read: false, wrt: true},
		{rooms: r, room: "lobby", read: true, wrt: true},
		{rooms: r, room: "lobby2", read: false, wrt: true},
		{rooms: r, room: "Support-1", read: false, wrt: true},
		{rooms: onlyRead, room: "x", read: true, wrt: false},
		{rooms: auth.Rooms{}, room: "x", read: false, wrt: false},
		{rooms: auth.Rooms{Read: []string{"a.b*"}}, room: "a.bc", read: true},
		{rooms: auth.Rooms{Read: []string{"a.b*"}}, room: "aXbc", read: false},
		{rooms: auth.Rooms{Read: []string{""}}, room: "x", read: false},
		{rooms: auth.Rooms{Read: []string{"a*b"}}, room: "axb", read: false},
	} {
		if got := tc.rooms.CanRead(tc.room); got != tc.read {
			t.Errorf("%+v.CanRead(%q) = %v, want %v", tc.rooms, tc.room, got, tc.read)
		}
		if got := tc.rooms.CanWrite(tc.room); got != tc.wrt {
			t.Errorf("%+v.CanWrite(%q) = %v, want %v", tc.rooms, tc.room, got, tc.wrt)
		}
	}
}

func TestParseRooms(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    auth.Rooms
		wantErr bool
	}{
		{spec: "read:*,write:*", want: auth.Rooms{Read: []string{"*"}, Write: []string{"*"}}},
		{spec: "read:support-*, write:support-42,read:lobby", want: auth.Rooms{Read: []string{"support-*", "lobby"}, Write: []string{"support-42"}}},
		{spec: "", want: auth.Rooms{}},
		{spec: "none", want: auth.Rooms{}},
		{spec: "read:", wantErr: true},
		{spec: "delete:*", wantErr: true},
		{spec: "read:a b", wantErr: true},
		{spec: "read:a*b", wantErr: true},
		{spec: "*", wantErr: true},
		{spec: "read:*,", wantErr: true},
	} {
		got, err := auth.ParseRooms(tc.spec)
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseRooms(%q) error = %v, want error %v", tc.spec, err, tc.wantErr)
		}
		if !slices.Equal(got.Read, tc.want.Read) || !slices.Equal(got.Write, tc.want.Write) {
			t.Fatalf("ParseRooms(%q) = %+v, want %+v", tc.spec, got, tc.want)
		}
	}
}

func TestRoomsModerate(t *testing.T) {
	r, err := auth.ParseRooms("read:*,moderate:support-*")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Moderate, []string{"support-*"}) {
		t.Fatalf("Moderate = %q, want [support-*]", r.Moderate)
	}
	for room, want := range map[string]bool{"support-1": true, "lobby": false} {
		if got := r.CanModerate(room); got != want {
			t.Errorf("CanModerate(%q) = %v, want %v", room, got, want)
		}
	}
	if r.CanWrite("support-1") {
		t.Errorf("moderate implies write; it must not")
	}
	all := auth.AllRooms()
	if !all.CanRead("x") || !all.CanWrite("x") || !all.CanModerate("x") {
		t.Errorf("AllRooms() = %+v, want every permission on every room", all)
	}
}
