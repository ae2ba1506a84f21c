package api_test

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"roomcast/api"
	"roomcast/broker"
	"roomcast/redisscripts"
	"roomcast/redisscripts/redistest"
)

// restartableServer is a roomcast API that a test can stop and start again
// on the same address with the same Redis, as when its process restarts.
type restartableServer struct {
	t     testing.TB
	redis *redistest.Server
	addr  string
	URL   string
	stop  func()
}

// startRestartable starts a restartableServer; it is stopped when the test
// ends.
func startRestartable(t testing.TB, rs *redistest.Server) *restartableServer {
	t.Helper()
	s := &restartableServer{t: t, redis: rs, addr: "127.0.0.1:0"}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// Start starts the server: on a free port the first time, on the same one
// after that.
func (s *restartableServer) Start() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen on %s: %v", s.addr, err)
	}
	s.addr = ln.Addr().String()
	s.URL = "http://" + s.addr

	rdb := redis.NewClient(&redis.Options{Addr: s.redis.Addr, MaxRetries: -1,
		DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second, PoolTimeout: time.Second})
	keys := redisscripts.NewKeys("roomcast:")
	store := redisscripts.NewStore(rdb, keys, redisscripts.StoreOptions{HistoryMax: 1000, IdempotencyTTL: time.Hour})
	hub := broker.New(rdb, broker.Options{
		Keys: keys, History: store, Encode: api.EncodeMessage, Buffer: 256,
		CheckInterval: time.Second, Timeout: time.Second, Logger: testLogger(),
	})
	tracker := presenceOf(store, serverConfig{PresenceGrace: 10 * time.Second, PresenceBeat: 15 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = hub.Run(ctx) }()
	trackerDone := make(chan struct{})
	go func() { defer close(trackerDone); _ = tracker.Run(ctx) }()
	if err := hub.WaitStarted(s.t.Context()); err != nil {
		s.t.Fatalf("hub did not start: %v", err)
	}
	e := echo.New()
	api.New(api.Options{
		Store: store, Rooms: hub, MaxMessageBytes: browserMaxMessageBytes,
		Heartbeat: 15 * time.Second, Retry: time.Second, WriteTimeout: 5 * time.Second, Logger: testLogger(),
		Presence: tracker, Events: store,
	}).Register(e)
	srv := httptest.NewUnstartedServer(e)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s.stop = func() {
		// As main does: ending the hub ends the streams Close waits for.
		cancel()
		<-done
		<-trackerDone
		srv.Close()
		rdb.Close()
	}
}

// Stop stops the server and waits until every request has ended. It does
// nothing if the server is stopped.
func (s *restartableServer) Stop() {
	if s.stop != nil {
		s.stop()
		s.stop = nil
	}
}
