// Package natsevents publishes user events to NATS JetStream: each event of
// the outbox goes to the subject "usersd.events.<tenant>.<type>" (for
// example usersd.events.acme.user.created) of the stream USERSD_EVENTS,
// with the tenant in the header Usersd-Tenant and the event id as
// Nats-Msg-Id, so the stream drops a copy published again within its
// duplicate window. The body is the same versioned JSON as a webhook's.
package natsevents

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// Stream names and subjects.
const (
	StreamName    = "USERSD_EVENTS"
	SubjectPrefix = "usersd.events."
	// HeaderTenant carries the id of the event's tenant.
	HeaderTenant = "Usersd-Tenant"
	// DuplicateWindow is how long the stream remembers message ids.
	DuplicateWindow = 10 * time.Minute
)

// Publisher publishes events to JetStream. It is safe for concurrent use.
type Publisher struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string // SubjectPrefix but in tests
}

// Connect connects to the NATS server at url and makes sure the stream
// exists with the subjects and duplicate window above. Close it.
func Connect(ctx context.Context, url string) (*Publisher, error) {
	return connect(ctx, url, StreamName, SubjectPrefix)
}

// connect is Connect with the stream's name and subject prefix as
// arguments, so that tests can each have their own stream.
func connect(ctx context.Context, url, stream, prefix string) (*Publisher, error) {
	nc, err := nats.Connect(url, nats.Name("usersd"), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats: connecting to %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       stream,
		Subjects:   []string{prefix + ">"},
		Duplicates: DuplicateWindow,
		Storage:    jetstream.FileStorage,
	}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats: stream %s: %w", stream, err)
	}
	return &Publisher{nc: nc, js: js, prefix: prefix}, nil
}

// Subject is the subject of the tenant's events of type t. Tenant ids are
// lower-case letters, digits and hyphens: one subject token.
func Subject(tenant string, t users.EventType) string {
	return SubjectPrefix + tenant + "." + string(t)
}

// Publish publishes ev and waits for the stream's acknowledgement.
func (p *Publisher) Publish(ctx context.Context, ev users.Event) error {
	body, err := webhooks.Payload(ev)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: p.prefix + ev.Tenant + "." + string(ev.Type), Data: body, Header: nats.Header{}}
	msg.Header.Set(HeaderTenant, ev.Tenant)
	if ev.TraceParent != "" {
		msg.Header.Set("traceparent", ev.TraceParent)
	}
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(ev.ID)); err != nil {
		return fmt.Errorf("nats: publishing event %s: %w", ev.ID, err)
	}
	return nil
}

// Close drains and closes the connection.
func (p *Publisher) Close() {
	p.nc.Close()
}
