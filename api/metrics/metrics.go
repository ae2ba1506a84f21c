// Package metrics exposes roomcast's Prometheus metrics: HTTP requests,
// streams, Redis commands and the broker's delivery counters.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"roomcast/broker"
)

// Metrics holds every roomcast metric in its own registry.
type Metrics struct {
	reg           *prometheus.Registry
	httpDuration  *prometheus.HistogramVec
	streamsOpen   prometheus.Gauge
	resumes       prometheus.Counter
	resets        prometheus.Counter
	posted        *prometheus.CounterVec
	redisDuration *prometheus.HistogramVec
	redisErrors   *prometheus.CounterVec
	apiKeys       *prometheus.CounterVec
	hookDuration  *prometheus.HistogramVec
	// streamsRemoved counts streams a ban or revocation reached.
	streamsRemoved *prometheus.CounterVec

	// The series every request, post and Redis command updates, each found
	// on its first use (so that /metrics lists only series that happened,
	// as before) and kept, instead of hashing label values each time.
	requestsMu    sync.RWMutex
	requests      map[requestLabels]prometheus.Observer
	postedSeries  [2]lazySeries[prometheus.Counter]                  // not replayed, replayed
	redisCommands [len(commandNames)]lazySeries[prometheus.Observer] // by commandIndex
}

// lazySeries is a series of a vector, made on its first use.
type lazySeries[T any] struct {
	once   sync.Once
	series T
}

func (l *lazySeries[T]) get(make func() T) T {
	l.once.Do(func() { l.series = make() })
	return l.series
}

// requestLabels are the labels of a request's duration.
type requestLabels struct {
	route, method string
	status        int
}

// New returns metrics registered in a new registry, with the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "roomcast_http_request_duration_seconds",
			Help:    "HTTP requests by route, method and status; streams count when they end.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5, 30, 300},
		}, []string{"route", "method", "status"}),
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "roomcast_streams_open", Help: "Event streams currently open.",
		}),
		resumes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roomcast_stream_resumes_total", Help: "Streams that resumed from a Last-Event-ID.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "roomcast_stream_resets_total", Help: "Reset events sent: a resume point could not be honoured.",
		}),
		posted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_messages_posted_total", Help: "Messages accepted by POST, by whether an idempotent retry replayed them.",
		}, []string{"replayed"}),
		redisDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "roomcast_redis_command_duration_seconds", Help: "Redis commands and pipelines by command name.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1},
		}, []string{"command"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_redis_errors_total", Help: "Redis commands that failed, by command name.",
		}, []string{"command"}),
		apiKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roomcast_api_key_requests_total",
			Help: "Requests with an X-API-Key header, by the key's position in SERVER_API_KEYS (from 1), or unknown.",
		}, []string{"key"}),
	}
	m.hookDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "roomcast_publish_hook_duration_seconds",
		Help:    "Questions to the before-publish hook by outcome: accepted, rewritten, rejected, failed (no usable answer in time).",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"outcome"})
	m.streamsRemoved = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "roomcast_streams_removed_total",
		Help: "Streams told of a ban (and ended, or for a multi-room stream the room dropped) or a token revocation (and ended), by reason.",
	}, []string{"reason"})
	m.requests = make(map[requestLabels]prometheus.Observer)
	m.reg.MustRegister(m.streamsRemoved)
	m.reg.MustRegister(m.httpDuration, m.streamsOpen, m.resumes, m.resets, m.posted, m.redisDuration, m.redisErrors, m.apiKeys, m.hookDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// PublishHookAsked counts one question to the before-publish hook.
func (m *Metrics) PublishHookAsked(outcome string, took time.Duration) {
	m.hookDuration.WithLabelValues(outcome).Observe(took.Seconds())
}

// StreamRemoved counts a stream that a ban ("banned") or a revocation
// ("revoked") reached.
func (m *Metrics) StreamRemoved(reason string) { m.streamsRemoved.WithLabelValues(reason).Inc() }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveHub publishes a hub's counters, read at each scrape.
func (m *Metrics) ObserveHub(stats func() broker.Stats) {
	gauge := func(name, help string, v func(broker.Stats) int) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help},
			func() float64 { return float64(v(stats())) })
	}
	counter := func(name, help string, v func(broker.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(stats())) })
	}
	m.reg.MustRegister(
		gauge("roomcast_rooms_listened", "Rooms with local subscribers.", func(s broker.Stats) int { return s.Rooms }),
		gauge("roomcast_subscribers", "Open subscriptions in the broker.", func(s broker.Stats) int { return s.Subscribers }),
		counter("roomcast_messages_received_total", "Messages received from Redis Pub/Sub.", func(s broker.Stats) uint64 { return s.Received }),
		counter("roomcast_messages_delivered_total", "Messages queued to subscribers, one per subscriber.", func(s broker.Stats) uint64 { return s.Delivered }),
		counter("roomcast_slow_client_drops_total", "Subscribers dropped because their queue was full.", func(s broker.Stats) uint64 { return s.SlowDrops }),
		counter("roomcast_gap_repairs_total", "Delivery gaps repaired from history.", func(s broker.Stats) uint64 { return s.Repairs }),
		counter("roomcast_redis_resubscribes_total", "Times the shared Redis subscription was re-established.", func(s broker.Stats) uint64 { return s.Reconnects }),
		counter("roomcast_catchup_ring_hits_total", "Stream catch-ups served from a room's ring of recent messages, without Redis.", func(s broker.Stats) uint64 { return s.RingHits }),
		counter("roomcast_catchup_history_reads_total", "History pages read from Redis for catch-ups and repairs; concurrent reads of one page count once.", func(s broker.Stats) uint64 { return s.HistoryHits }),
	)
}

// StreamOpened counts an open stream until the returned func is called.
func (m *Metrics) StreamOpened() (closed func()) {
	m.streamsOpen.Inc()
	return m.streamsOpen.Dec
}

// Resumed counts a stream that resumed from a client's position.
func (m *Metrics) Resumed() { m.resumes.Inc() }

// Reset counts a reset event sent to a client.
func (m *Metrics) Reset() { m.resets.Inc() }

// Posted counts an accepted post.
func (m *Metrics) Posted(replayed bool) {
	i := 0
	if replayed {
		i = 1
	}
	m.postedSeries[i].get(func() prometheus.Counter {
		return m.posted.WithLabelValues(strconv.FormatBool(replayed))
	}).Inc()
}

// APIKeyRequest counts a request with a server API key: index is the
// key's position in SERVER_API_KEYS, from 1, or 0 for a key that is none
// of them. The key's value is never a label.
func (m *Metrics) APIKeyRequest(index int) {
	label := "unknown"
	if index > 0 {
		label = strconv.Itoa(index)
	}
	m.apiKeys.WithLabelValues(label).Inc()
}

// Middleware records each request's duration by route template, so that
// room ids do not become labels.
func (m *Metrics) Middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		m.requestObserver(requestLabels{route, methodLabel(c.Request().Method), c.Response().Status}).
			Observe(time.Since(start).Seconds())
		return nil
	}
}

// requestObserver is the duration series of labels. Their values are few
// (route templates, methodLabel, status codes), so the cache stays small.
func (m *Metrics) requestObserver(labels requestLabels) prometheus.Observer {
	m.requestsMu.RLock()
	o, ok := m.requests[labels]
	m.requestsMu.RUnlock()
	if ok {
		return o
	}
	o = m.httpDuration.WithLabelValues(labels.route, labels.method, strconv.Itoa(labels.status))
	m.requestsMu.Lock()
	m.requests[labels] = o
	m.requestsMu.Unlock()
	return o
}

// methodLabel keeps the method label to a fixed set: a client may send any
// token as a method, and each label value is a series kept for ever.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	default:
		return "other"
	}
}

// RedisHook returns a go-redis hook that times every command and pipeline
// and counts failures (a missing key, redis.Nil, is not a failure).
func (m *Metrics) RedisHook() redis.Hook { return redisHook{m} }

type redisHook struct{ m *Metrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(commandIndex(cmd), start, err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe(pipelineIndex, start, err)
		return err
	}
}

func (h redisHook) observe(name int, start time.Time, err error) {
	h.m.redisCommands[name].get(func() prometheus.Observer {
		return h.m.redisDuration.WithLabelValues(commandNames[name])
	}).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		h.m.redisErrors.WithLabelValues(commandNames[name]).Inc()
	}
}

// commandNames are the values of the command label: the commands roomcast
// sends by name, then "pipeline" and "other". Label values stay few: the
// command name only, never keys.
var commandNames = [...]string{"evalsha", "eval", "publish", "hmget", "ping", "psubscribe", "punsubscribe", "script",
	"zrange", "hello", "client", "pipeline", "other"}

const (
	pipelineIndex = len(commandNames) - 2
	otherIndex    = len(commandNames) - 1
)

// commandIndex is the index in commandNames of cmd's label.
func commandIndex(cmd redis.Cmder) int {
	name := cmd.Name()
	for i, known := range commandNames[:pipelineIndex] {
		if name == known {
			return i
		}
	}
	return otherIndex
}
