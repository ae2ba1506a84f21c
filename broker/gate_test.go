package broker_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/broker"
	"roomcast/broker/chat"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// The hub refuses listeners until its first subscription is confirmed: a
// listener taken before could miss messages published in between.
func TestListenWaitsForTheFirstSubscription(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the hub cannot subscribe yet
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer rdb.Close()
	srv := redistest.Start(t)
	store := redisscripts.NewStore(srv.Client(), keys, redisscripts.StoreOptions{HistoryMax: 10, IdempotencyTTL: time.Hour})
	hub := broker.New(rdb, broker.Options{Keys: keys, History: store, ClientBuffer: 4,
		DeliveryCheckInterval: time.Hour, RedisTimeout: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	defer func() { cancel(); <-done }()

	_, err = hub.Subscribe(t.Context(), "r")
	if !errors.Is(err, broker.ErrNotStarted) || !errors.Is(err, chat.ErrUnavailable) {
		t.Fatalf("Subscribe before the first subscription: %v, want ErrNotStarted, an ErrUnavailable", err)
	}
	if err := hub.Ready(); !errors.Is(err, broker.ErrNotReady) {
		t.Fatalf("Ready = %v, want ErrNotReady", err)
	}
}
