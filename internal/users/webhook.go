package users

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"time"
)

// Limits of webhooks.
const (
	// MaxWebhooks bounds how many subscriptions may exist.
	MaxWebhooks = 100
	// DefaultDisableAfter is how many failed deliveries in a row disable a
	// subscription.
	DefaultDisableAfter = 50
	// DefaultDeliveryPageSize and MaxDeliveryPageSize bound
	// ListDeliveryAttempts.
	DefaultDeliveryPageSize = 50
	MaxDeliveryPageSize     = 500
	// dispatchBatch is how many events one DispatchEvents transaction
	// reads.
	dispatchBatch = 500
)

// Webhook is a subscription: the events of the listed types are POSTed to
// URL, signed with Secret (Standard Webhooks).
type Webhook struct {
	// Tenant is the id of the tenant the subscription belongs to.
	Tenant string
	// AllTenants makes the subscription receive the events of every
	// tenant, not only its own. Only a caller that is not bound to a
	// tenant (the platform) may set it, see, change or delete such a
	// subscription.
	AllTenants bool
	ID         string
	URL        string
	// EventTypes are the types delivered; empty means every user event
	// type (group events are delivered only to subscriptions that name
	// them).
	EventTypes []EventType
	// Secret signs the deliveries ("whsec_…").
	Secret  string
	Enabled bool
	// ConsecutiveFailures counts failed delivery attempts since the last
	// success; at the disable threshold the subscription is disabled, with
	// DisabledReason saying why.
	ConsecutiveFailures int
	DisabledReason      string
	CreateTime          time.Time
	UpdateTime          time.Time
	// LastSuccessTime and LastFailureTime are the times of the last
	// successful and of the last failed delivery attempt; the zero time
	// means there was none. Output only; set by Record.
	LastSuccessTime time.Time
	LastFailureTime time.Time
}

// Wants reports whether events of type t are delivered to w. A
// subscription without types receives the user events, as it did before
// groups existed; group events go to the subscriptions that name them.
func (w *Webhook) Wants(t EventType) bool {
	if len(w.EventTypes) == 0 {
		return !t.IsGroupEvent()
	}
	return slices.Contains(w.EventTypes, t)
}

// Receives reports whether w is sent ev: an event of its tenant, or of any
// tenant when it is AllTenants, of a type it Wants.
func (w *Webhook) Receives(ev *Event) bool {
	return (w.AllTenants || w.Tenant == ev.Tenant) && w.Wants(ev.Type)
}

// Delivery is one event to deliver to one subscription: the argument of a
// delivery job.
type Delivery struct {
	WebhookID string
	EventID   string
	// Time is the event's Time, when the event happened: the age of a
	// subscription's backlog is measured from it.
	Time time.Time
}

// DeliveryAttempt is the record of one POST of an event to a subscription.
type DeliveryAttempt struct {
	WebhookID string
	EventID   string
	EventType EventType
	Attempt   int
	// Status is the HTTP status, 0 when no response came.
	Status  int
	Latency time.Duration
	Success bool
	// Error says why the attempt failed; "" on success.
	Error string
	Time  time.Time
}

// WebhookRequest is the input of CreateWebhook and UpdateWebhook.
type WebhookRequest struct {
	// Tenant is the subscription's tenant; "" is DefaultTenant.
	Tenant string
	// AllTenants, for CreateWebhook, subscribes to the events of every
	// tenant.
	AllTenants bool
	URL        string
	EventTypes []EventType
	Enabled    bool
	// Paths, for UpdateWebhook, are the fields to change: url,
	// event_types, enabled, secret (a new secret is generated); empty
	// means url, event_types and enabled.
	Paths []string
}

var eventTypes = []EventType{EventCreated, EventUpdated, EventDeleted, EventUndeleted, EventPurged,
	EventGroupCreated, EventGroupUpdated, EventGroupDeleted, EventGroupMemberAdded, EventGroupMemberRemoved}

func (s *Service) checkWebhook(vs *violations, req WebhookRequest, fields map[string]bool) {
	if fields["url"] {
		switch {
		case req.URL == "":
			vs.add("webhook.url", "required")
		case textProblem(req.URL) != "":
			vs.add("webhook.url", textProblem(req.URL))
		case s.checkURL != nil:
			if err := s.checkURL(req.URL); err != nil {
				vs.add("webhook.url", err.Error())
			}
		}
	}
	if fields["event_types"] {
		for i, t := range req.EventTypes {
			if !slices.Contains(eventTypes, t) {
				vs.add(fmt.Sprintf("webhook.event_types[%d]", i), fmt.Sprintf("unknown event type %q (want one of %v)", t, eventTypes))
			}
		}
	}
}

// CreateWebhook creates a subscription with a new secret and returns it,
// the only time the secret is shown.
func (s *Service) CreateWebhook(ctx context.Context, req WebhookRequest) (*Webhook, error) {
	tenant, err := s.oneTenant(ctx, "parent", req.Tenant)
	if err != nil {
		return nil, err
	}
	if _, bound := BoundTenant(ctx); bound && req.AllTenants {
		return nil, Invalid("webhook.all_tenants", "only the platform (a caller not bound to a tenant) may subscribe to every tenant's events")
	}
	var vs violations
	s.checkWebhook(&vs, req, map[string]bool{"url": true, "event_types": true})
	if err := vs.err(); err != nil {
		return nil, err
	}
	now := s.clock()
	w := &Webhook{
		Tenant:     tenant,
		AllTenants: req.AllTenants,
		ID:         NewID(),
		URL:        req.URL,
		EventTypes: slices.Compact(slices.Sorted(slices.Values(req.EventTypes))),
		Secret:     s.newSecret(),
		Enabled:    req.Enabled,
		CreateTime: now,
		UpdateTime: now,
	}
	return s.store.CreateWebhook(ctx, w)
}

// GetWebhook returns the tenant's subscription with the id (any tenant's
// for AllTenants).
func (s *Service) GetWebhook(ctx context.Context, tenant, id string) (*Webhook, error) {
	tenant, err := s.inTenant(ctx, "name", tenant)
	if err != nil {
		return nil, err
	}
	return s.getWebhook(ctx, "id", tenant, id)
}

// getWebhook is GetWebhook once the tenant is checked, with the id from
// the request field named field.
func (s *Service) getWebhook(ctx context.Context, field, tenant, id string) (*Webhook, error) {
	id, err := checkID(field, id)
	if err != nil {
		return nil, err
	}
	w, err := s.store.GetWebhook(ctx, tenant, id)
	if err != nil {
		return nil, err
	}
	if !visible(ctx, w) {
		return nil, fmt.Errorf("webhook %s: %w", id, ErrNotFound)
	}
	return w, nil
}

// visible reports whether ctx's caller may see w: a caller bound to a
// tenant does not see the subscriptions to every tenant.
func visible(ctx context.Context, w *Webhook) bool {
	_, bound := BoundTenant(ctx)
	return !bound || !w.AllTenants
}

// ListWebhooks returns the tenant's subscriptions (every tenant's for
// AllTenants), oldest first.
func (s *Service) ListWebhooks(ctx context.Context, tenant string) ([]*Webhook, error) {
	tenant, err := s.inTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, err
	}
	ws, err := s.store.ListWebhooks(ctx, tenant)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ws, func(w *Webhook) bool { return !visible(ctx, w) }), nil
}

// UpdateWebhook changes the fields of the subscription that req.Paths
// name. Enabling a subscription resets its failure count.
func (s *Service) UpdateWebhook(ctx context.Context, id string, req WebhookRequest) (*Webhook, error) {
	tenant, err := s.oneTenant(ctx, "webhook.name", req.Tenant)
	if err != nil {
		return nil, err
	}
	id, err = checkID("webhook.id", id)
	if err != nil {
		return nil, err
	}
	fields := map[string]bool{}
	paths := req.Paths
	if len(paths) == 0 {
		paths = []string{"url", "event_types", "enabled"}
	}
	for _, p := range paths {
		switch p {
		case "url", "enabled", "secret":
			fields[p] = true
		case "event_types", "eventTypes":
			fields["event_types"] = true
		default:
			return nil, Invalid("update_mask", fmt.Sprintf("unknown or unchangeable field %q (want url, event_types, enabled or secret)", p))
		}
	}
	var vs violations
	s.checkWebhook(&vs, req, fields)
	if err := vs.err(); err != nil {
		return nil, err
	}
	return s.store.UpdateWebhook(ctx, tenant, id, func(w *Webhook) error {
		if !visible(ctx, w) {
			return fmt.Errorf("webhook %s: %w", id, ErrNotFound)
		}
		if fields["url"] {
			w.URL = req.URL
		}
		if fields["event_types"] {
			w.EventTypes = slices.Compact(slices.Sorted(slices.Values(req.EventTypes)))
		}
		if fields["enabled"] {
			if req.Enabled && !w.Enabled {
				w.ConsecutiveFailures, w.DisabledReason = 0, ""
			}
			w.Enabled = req.Enabled
		}
		if fields["secret"] {
			w.Secret = s.newSecret()
		}
		w.UpdateTime = s.clock()
		return nil
	})
}

// DeleteWebhook deletes the subscription and its delivery records; queued
// deliveries to it are dropped when they run.
func (s *Service) DeleteWebhook(ctx context.Context, tenant, id string) error {
	tenant, err := s.oneTenant(ctx, "name", tenant)
	if err != nil {
		return err
	}
	w, err := s.getWebhook(ctx, "id", tenant, id)
	if err != nil {
		return err
	}
	return s.store.DeleteWebhook(ctx, tenant, w.ID)
}

// ListDeliveryAttempts returns the latest delivery attempts to the
// subscription, newest first.
func (s *Service) ListDeliveryAttempts(ctx context.Context, tenant, id string, pageSize int) ([]DeliveryAttempt, error) {
	tenant, err := s.oneTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, err
	}
	id, err = checkID("webhook_id", id)
	if err != nil {
		return nil, err
	}
	switch {
	case pageSize < 0:
		return nil, Invalid("page_size", "must not be negative")
	case pageSize == 0:
		pageSize = DefaultDeliveryPageSize
	case pageSize > MaxDeliveryPageSize:
		pageSize = MaxDeliveryPageSize
	}
	if _, err := s.getWebhook(ctx, "webhook_id", tenant, id); err != nil {
		return nil, err
	}
	return s.store.ListDeliveryAttempts(ctx, id, pageSize)
}

// RecordDeliveryAttempt stores the attempt and updates the subscription's
// failure count, disabling it after the threshold of failures in a row; it
// returns the subscription as it is then.
func (s *Service) RecordDeliveryAttempt(ctx context.Context, a DeliveryAttempt) (*Webhook, error) {
	return s.RecordDeliveryAttempts(ctx, a.WebhookID, []DeliveryAttempt{a})
}

// RecordDeliveryAttempts stores attempts to the subscription webhookID, in
// their order, in one transaction, as RecordDeliveryAttempt does each; it
// returns the subscription as it is then.
func (s *Service) RecordDeliveryAttempts(ctx context.Context, webhookID string, as []DeliveryAttempt) (*Webhook, error) {
	now := s.clock()
	as = slices.Clone(as)
	for i := range as {
		if as[i].WebhookID != webhookID {
			return nil, fmt.Errorf("users: an attempt to webhook %s recorded as one to %s", as[i].WebhookID, webhookID)
		}
		as[i].Time = now
		as[i].Error = storableText(as[i].Error)
	}
	return s.store.RecordDeliveryAttempts(ctx, webhookID, as, s.disableAfter)
}

// DispatchEvents turns the events appended since the last dispatch into
// delivery jobs, one per event and enabled subscription that wants it, in
// batches, and returns how many events it read.
func (s *Service) DispatchEvents(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.store.DispatchEvents(ctx, dispatchBatch)
		total += n
		if err != nil || n < dispatchBatch {
			return total, err
		}
	}
}

// GetEvent returns the event with the id, or ErrNotFound once purged.
func (s *Service) GetEvent(ctx context.Context, id string) (*Event, error) {
	return s.store.GetEvent(ctx, id)
}

// randomSecret returns a Standard Webhooks secret: "whsec_" and 32 random
// bytes in base64.
func randomSecret() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// Clone returns a deep copy of w.
func (w *Webhook) Clone() *Webhook {
	c := *w
	c.EventTypes = slices.Clone(w.EventTypes)
	return &c
}

// Record applies the outcome of attempt a to w, as stores do in
// RecordDeliveryAttempt: a success sets ConsecutiveFailures to 0 and
// LastSuccessTime to a.Time, a failure adds one to ConsecutiveFailures and
// sets LastFailureTime to a.Time, and when an enabled subscription's count
// reaches disableAfter (if it is positive) it disables w, with a
// DisabledReason that names a's error, and sets UpdateTime to a.Time. It
// reports whether it disabled w.
func (w *Webhook) Record(a DeliveryAttempt, disableAfter int) bool {
	if a.Success {
		w.ConsecutiveFailures = 0
		w.LastSuccessTime = a.Time
		return false
	}
	w.ConsecutiveFailures++
	w.LastFailureTime = a.Time
	if !w.Enabled || disableAfter <= 0 || w.ConsecutiveFailures < disableAfter {
		return false
	}
	w.Enabled = false
	w.DisabledReason = fmt.Sprintf("disabled after %d failed deliveries in a row; last: %s", w.ConsecutiveFailures, a.Error)
	w.UpdateTime = a.Time
	return true
}
