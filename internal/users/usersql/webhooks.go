package usersql

import (
	"time"

	"github.com/usersd/usersd/internal/users"
)

// DispatcherSink is the name under which DispatchEvents keeps its position
// in event_sinks.
const DispatcherSink = "webhooks"

// Deliveries returns the deliveries of evs to hooks, in event order: one per
// event and enabled subscription that receives it (users.Webhook.Receives),
// with the event's time.
func Deliveries(evs []users.Event, hooks []*users.Webhook) []users.Delivery {
	var out []users.Delivery
	for _, ev := range evs {
		for _, w := range hooks {
			if w.Enabled && w.Receives(&ev) {
				out = append(out, users.Delivery{WebhookID: w.ID, EventID: ev.ID, Time: ev.Time})
			}
		}
	}
	return out
}

// StoredWebhook returns w, changed to read as a store returns it: times in
// UTC at microsecond precision (the zero time stays zero: NULL) and nil for
// no event types.
func StoredWebhook(w *users.Webhook) *users.Webhook {
	if len(w.EventTypes) == 0 {
		w.EventTypes = nil
	}
	w.CreateTime, w.UpdateTime = users.Truncate(w.CreateTime), users.Truncate(w.UpdateTime)
	w.LastSuccessTime, w.LastFailureTime = storedTime(w.LastSuccessTime), storedTime(w.LastFailureTime)
	return w
}

// storedTime is t as a nullable time column reads back: the zero time for
// NULL, else t in UTC at microsecond precision.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return users.Truncate(t)
}
