package api_test

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"roomcast/api/app"
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
	a := app.New(rdb, app.Options{
		KeyPrefix: "roomcast:", HistoryMax: 1000, IdempotencyTTL: time.Hour, RedisTimeout: time.Second,
		ClientBuffer: 256, DeliveryCheckInterval: time.Second, MaxMessageBytes: browserMaxMessageBytes,
		HeartbeatInterval: 15 * time.Second, SSERetry: time.Second, StreamWriteTimeout: 5 * time.Second,
		Spec: testSpec(s.t), Logger: testLogger(),
		PresenceGrace: 10 * time.Second, PresenceInterval: 15 * time.Second, PresenceMaxUsers: 100,
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx) }()
	if err := a.WaitStarted(s.t.Context()); err != nil {
		s.t.Fatalf("hub did not start: %v", err)
	}
	srv := httptest.NewUnstartedServer(a.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	s.stop = func() {
		// As main does: ending the hub ends the streams Close waits for.
		cancel()
		<-done
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
