package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"roomcast/broker/webhook"
)

// ObserveWebhooks publishes a webhook deliverer's counters, read at each
// scrape.
func (m *Metrics) ObserveWebhooks(stats func() webhook.Stats) {
	deliveries := func(outcome string, v func(webhook.Stats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "roomcast_webhook_deliveries_total", Help: "Webhook requests by outcome: delivered (2xx), failed (retried later), dead (too old, a dead letter).",
			ConstLabels: prometheus.Labels{"outcome": outcome},
		}, func() float64 { return float64(v(stats())) })
	}
	m.reg.MustRegister(
		deliveries("delivered", func(s webhook.Stats) uint64 { return s.Delivered }),
		deliveries("failed", func(s webhook.Stats) uint64 { return s.Failed }),
		deliveries("dead", func(s webhook.Stats) uint64 { return s.Dead }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roomcast_webhook_queue_depth", Help: "Webhook events waiting in the outboxes (every instance's), as last read.",
		}, func() float64 { return float64(stats().Queue.Pending) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roomcast_webhook_queue_rooms", Help: "Rooms with webhook events waiting, as last read.",
		}, func() float64 { return float64(stats().Queue.Rooms) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roomcast_webhook_oldest_age_seconds", Help: "Age of the oldest webhook event waiting, as last read.",
		}, func() float64 { return stats().Queue.Oldest.Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roomcast_webhook_dead_letters", Help: "Webhook events in the dead letters, as last read.",
		}, func() float64 { return float64(stats().Queue.Dead) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "roomcast_webhook_rooms_sending", Help: "Rooms whose webhooks this instance is sending now.",
		}, func() float64 { return float64(stats().Active) }),
	)
}
