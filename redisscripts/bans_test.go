package redisscripts

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"roomcast/broker/chat"
)

func TestBans(t *testing.T) {
	t.Parallel()
	s, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	sub := rdb.Subscribe(ctx, s.keys.ControlChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	announced := func() chat.Control {
		t.Helper()
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var c chat.Control
		if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil {
			t.Fatalf("control message %s: %v", msg.Payload, err)
		}
		return c
	}

	at := time.Now().UTC().Truncate(time.Millisecond)
	later := at.Add(time.Hour)
	ban := chat.Ban{Room: "r", User: "ann", Reason: "spam", By: "mod", At: at}
	created, err := s.SetBan(ctx, ban)
	if err != nil || !created {
		t.Fatalf("SetBan = %v, %v; want created", created, err)
	}
	if c := announced(); c.Op != chat.ControlBan || c.Ban == nil || c.Ban.User != "ann" || c.Ban.Reason != "spam" {
		t.Fatalf("announced %+v, want the ban", c)
	}
	ban.Until = &later
	if created, err := s.SetBan(ctx, ban); err != nil || created {
		t.Fatalf("SetBan again = %v, %v; want replaced", created, err)
	}
	announced()
	// Ended already (the API refuses that; the store does not check):
	// forgotten by the next write.
	past := time.Now().Add(-time.Millisecond)
	if _, err := s.SetBan(ctx, chat.Ban{Room: "r", User: "bob", Until: &past, By: "mod", At: at.Add(time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	announced()
	bans, err := s.Bans(ctx, "r")
	if err != nil || len(bans) != 1 || bans[0].User != "ann" || !bans[0].Until.Equal(later) {
		t.Fatalf("Bans = %+v, %v; want ann's until %v only", bans, err, later)
	}
	if err := s.LiftBan(ctx, "r", "bob"); !errors.Is(err, chat.ErrNoBan) {
		t.Fatalf("LiftBan(ended ban) = %v, want ErrNoBan", err)
	}
	if n := rdb.HLen(ctx, s.keys.bans("r")).Val(); n != 1 {
		t.Fatalf("bans hash holds %d, want the ended ban forgotten", n)
	}
	if _, err := s.SetBan(ctx, chat.Ban{Room: "other", User: "cy", By: "system", At: at}); err != nil {
		t.Fatal(err)
	}
	announced()
	all, err := s.AllBans(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("AllBans = %+v, %v; want 2", all, err)
	}
	if err := s.LiftBan(ctx, "r", "ann"); err != nil {
		t.Fatalf("LiftBan = %v", err)
	}
	if c := announced(); c.Op != chat.ControlLift || c.Ban.Room != "r" || c.Ban.User != "ann" {
		t.Fatalf("announced %+v, want the lift", c)
	}
	if err := s.LiftBan(ctx, "r", "ann"); !errors.Is(err, chat.ErrNoBan) {
		t.Fatalf("LiftBan again = %v, want ErrNoBan", err)
	}
	if rdb.Exists(ctx, s.keys.bans("r")).Val() != 0 || rdb.SIsMember(ctx, s.keys.bannedRooms("all"), "r").Val() {
		t.Fatalf("room r still has bans or is still indexed")
	}
	if all, _ := s.AllBans(ctx); len(all) != 1 || all[0].User != "cy" {
		t.Fatalf("AllBans after lift = %+v, want cy's", all)
	}
}

func TestRevocations(t *testing.T) {
	t.Parallel()
	s, _, rdb := newStore(t, StoreOptions{})
	ctx := t.Context()
	sub := rdb.Subscribe(ctx, s.keys.ControlChannel())
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	byJTI := chat.Revocation{JTI: "t-1", Expires: now.Add(time.Hour)}
	byUser := chat.Revocation{User: "ann:x", IssuedBefore: now, Expires: now.Add(2 * time.Hour)}
	for _, r := range []chat.Revocation{byJTI, byUser} {
		if err := s.Revoke(ctx, r); err != nil {
			t.Fatal(err)
		}
		msg, err := sub.ReceiveMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var c chat.Control
		if err := json.Unmarshal([]byte(msg.Payload), &c); err != nil || c.Op != chat.ControlRevoke || c.Revocation == nil {
			t.Fatalf("announced %s, want a revocation", msg.Payload)
		}
	}
	// An earlier expiry does not shorten the entry.
	if err := s.Revoke(ctx, chat.Revocation{JTI: "t-1", Expires: now.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke(ctx, chat.Revocation{JTI: "gone", Expires: time.Now().Add(-time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Revocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []chat.Revocation{byJTI, byUser}
	if len(got) != len(want) {
		t.Fatalf("Revocations = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].JTI != want[i].JTI || got[i].User != want[i].User || !got[i].IssuedBefore.Equal(want[i].IssuedBefore) ||
			!got[i].Expires.Equal(want[i].Expires) {
			t.Fatalf("Revocations[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}
