package jobs

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/usersd/usersd/internal/users"
)

// Sink names: the webhook dispatcher's and the NATS relay's saved feed
// positions.
const (
	sinkWebhooks = "webhooks"
	sinkNATS     = natsSink
)

// eventMetrics reports the event relays: events relayed (counted as the
// jobs run) and, read at scrape time, how far each relay is behind the
// feed, how many subscriptions are enabled or disabled, and how far each
// subscription is behind: its backlog's events and age, and its last
// success.
type eventMetrics struct {
	svc      *users.Service
	sinks    []string
	backlog  backlogFunc
	relayed  *prometheus.CounterVec
	lagDesc  *prometheus.Desc
	hookDesc *prometheus.Desc

	backlogDesc, ageDesc, successDesc *prometheus.Desc
}

func newEventMetrics(svc *users.Service, sinks []string, backlog backlogFunc) *eventMetrics {
	return &eventMetrics{
		svc:     svc,
		sinks:   sinks,
		backlog: backlog,
		relayed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "usersd_events_relayed_total",
			Help: "Events read from the outbox by a relay: dispatched to webhooks (sink webhooks) or published to NATS (sink nats).",
		}, []string{"sink"}),
		lagDesc: prometheus.NewDesc("usersd_event_feed_lag_seconds",
			"Age of the oldest event a relay has not handled yet, 0 when it is caught up; read at scrape time.", []string{"sink"}, nil),
		hookDesc: prometheus.NewDesc("usersd_webhooks",
			"Webhook subscriptions by state (enabled, disabled); read at scrape time.", []string{"state"}, nil),
		backlogDesc: prometheus.NewDesc("usersd_webhook_backlog_events",
			"Events dispatched to the subscription and not yet delivered or given up, on every replica; read at scrape time.", []string{"webhook", "enabled"}, nil),
		ageDesc: prometheus.NewDesc("usersd_webhook_backlog_age_seconds",
			"Age of the oldest event of the subscription's backlog, 0 when it has none; read at scrape time.", []string{"webhook", "enabled"}, nil),
		successDesc: prometheus.NewDesc("usersd_webhook_last_success_timestamp_seconds",
			"When a delivery to the subscription last succeeded (Unix time); absent until one does.", []string{"webhook"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *eventMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.relayed.Describe(ch)
	ch <- m.lagDesc
	ch <- m.hookDesc
	ch <- m.backlogDesc
	ch <- m.ageDesc
	ch <- m.successDesc
}

// Collect implements prometheus.Collector.
func (m *eventMetrics) Collect(ch chan<- prometheus.Metric) {
	m.relayed.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), depthTimeout)
	defer cancel()
	for _, sink := range m.sinks {
		lag, err := feedLag(ctx, m.svc, sink)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(m.lagDesc, err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(m.lagDesc, prometheus.GaugeValue, lag.Seconds(), sink)
	}
	if !slices.Contains(m.sinks, sinkWebhooks) {
		return
	}
	hooks, err := m.svc.ListWebhooks(ctx, users.AllTenants)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.hookDesc, fmt.Errorf("listing webhooks: %w", err))
		return
	}
	enabled := 0
	for _, h := range hooks {
		if h.Enabled {
			enabled++
		}
	}
	ch <- prometheus.MustNewConstMetric(m.hookDesc, prometheus.GaugeValue, float64(enabled), "enabled")
	ch <- prometheus.MustNewConstMetric(m.hookDesc, prometheus.GaugeValue, float64(len(hooks)-enabled), "disabled")
	backlogs, err := m.backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.backlogDesc, fmt.Errorf("reading the webhook backlogs: %w", err))
		return
	}
	now := time.Now()
	for _, h := range hooks {
		b, on := backlogs[h.ID], strconv.FormatBool(h.Enabled)
		ch <- prometheus.MustNewConstMetric(m.backlogDesc, prometheus.GaugeValue, float64(b.Events), h.ID, on)
		ch <- prometheus.MustNewConstMetric(m.ageDesc, prometheus.GaugeValue, b.Age(now).Seconds(), h.ID, on)
		if !h.LastSuccessTime.IsZero() {
			ch <- prometheus.MustNewConstMetric(m.successDesc, prometheus.GaugeValue, float64(h.LastSuccessTime.UnixMilli())/1e3, h.ID)
		}
	}
}

// feedLag is the age of the first event after the sink's position.
func feedLag(ctx context.Context, svc *users.Service, sink string) (time.Duration, error) {
	pos, err := svc.SinkPosition(ctx, sink)
	if err != nil {
		return 0, err
	}
	page, err := svc.ListEvents(ctx, users.AllTenants, pos.Cursor(), 1)
	if err != nil || len(page.Events) == 0 {
		return 0, err
	}
	return max(0, time.Since(page.Events[0].Time)), nil
}
