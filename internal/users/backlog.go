package users

import (
	"context"
	"time"
)

// WebhookBacklog is what a subscription has still to receive: the events
// dispatched to it that are neither delivered nor given up yet.
type WebhookBacklog struct {
	// Events counts them.
	Events int
	// Oldest is when the oldest of them happened; zero when Events is 0.
	Oldest time.Time
}

// Age is how long ago the backlog's oldest event happened, at now; 0 when
// the backlog is empty.
func (b WebhookBacklog) Age(now time.Time) time.Duration {
	if b.Events == 0 || b.Oldest.IsZero() {
		return 0
	}
	return max(0, now.Sub(b.Oldest))
}

// BacklogReader reads the backlogs of the subscriptions, by webhook id;
// one that is missing has none. The job queue, which holds the
// deliveries, implements it.
type BacklogReader interface {
	WebhookBacklogs(ctx context.Context) (map[string]WebhookBacklog, error)
}

// WebhookBacklogs returns the subscriptions' backlogs by webhook id; none
// when the Service has no BacklogReader (Config.Backlogs).
func (s *Service) WebhookBacklogs(ctx context.Context) (map[string]WebhookBacklog, error) {
	if s.backlogs == nil {
		return map[string]WebhookBacklog{}, nil
	}
	return s.backlogs.WebhookBacklogs(ctx)
}
