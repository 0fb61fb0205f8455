package grpcserver_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// apiVersion is one API version's calls on the user events feed and the
// webhook subscriptions, for the tests that run one scenario per version
// (see forEachVersion). It hides the request and response types, and
// whether users, events and webhooks are named by id (v1) or by resource
// name (v2): a ref is an id in v1 and a name such as
// tenants/default/users/{id} in v2, which answers with full names (v1 acts
// on the default tenant, and so do these tests).
type apiVersion interface {
	// name is the subtest's name: "v1" or "v2".
	name() string

	// userRef, eventRef and webhookRef give the ref of the user, event
	// or webhook with this id.
	userRef(id string) string
	eventRef(id string) string
	webhookRef(id string) string
	// webhookRefOf returns the ref of w, a Webhook of this version.
	webhookRefOf(w webhookMsg) string

	updateUser(ctx context.Context, id, displayName string, labels map[string]string, paths ...string) error
	listUserEvents(ctx context.Context, after string, pageSize int32) (evs []*userEvent, next string, err error)
	watchUserEvents(ctx context.Context, after string) (grpc.ServerStreamingClient[userEvent], error)

	// newWebhook returns a Webhook of this version with these fields.
	newWebhook(ref string, w webhookFields) webhookMsg
	// createWebhook sends w, or no webhook at all when w is nil.
	createWebhook(ctx context.Context, w *webhookFields) (webhookMsg, error)
	getWebhook(ctx context.Context, ref string) (webhookMsg, error)
	listWebhooks(ctx context.Context) ([]webhookMsg, error)
	updateWebhook(ctx context.Context, ref string, w webhookFields, paths ...string) (webhookMsg, error)
	deleteWebhook(ctx context.Context, ref string) error
	listWebhookDeliveries(ctx context.Context, ref string, pageSize int32) ([]webhookDelivery, error)
}

// forEachVersion runs test as the subtests v1 and v2, each on a fresh
// eventsEnv.
func forEachVersion(t *testing.T, test func(t *testing.T, e *eventsEnv, v apiVersion)) {
	for _, name := range []string{"v1", "v2"} {
		t.Run(name, func(t *testing.T) {
			e := newEventsEnv(t)
			test(t, e, e.versions()[name])
		})
	}
}

// versions returns e's clients of both versions, by name.
func (e *eventsEnv) versions() map[string]apiVersion {
	return map[string]apiVersion{"v1": v1API{e.client}, "v2": v2API{e.v2}}
}

// userEvent is a user event of either version, field for field: what is
// an id in v1 is a name in v2 (see apiVersion).
type userEvent struct {
	Ref, Type, Cursor string
	User              string // v1 user_id, v2 user
	Snapshot          *userSnapshot
	ChangedPaths      []string
	Time              *timestamppb.Timestamp // v1 time, v2 create_time
}

// userSnapshot is what the tests check of the user an event carries.
type userSnapshot struct {
	Ref, DisplayName string
	Deleted          bool // state is STATE_DELETED
	DeleteTime       *timestamppb.Timestamp
}

// webhookMsg is what the Webhook messages of both versions have in common.
type webhookMsg interface {
	proto.Message
	GetUrl() string
	GetSecret() string
	GetCreateTime() *timestamppb.Timestamp
	GetUpdateTime() *timestamppb.Timestamp
}

// webhookFields are the fields of a Webhook a client may send.
type webhookFields struct {
	URL                 string
	EventTypes          []string
	Enabled             bool
	Secret              string
	ConsecutiveFailures int32
}

// webhookDelivery is a WebhookDelivery of either version, field for field.
type webhookDelivery struct {
	Event           string // v1 event_id, v2 event
	EventType       string
	Attempt, Status int32
	Latency         *durationpb.Duration
	Success         bool
	Error           string
	Time            *timestamppb.Timestamp // v1 time, v2 create_time
}

// eventStream is a stream of one version's events, received as userEvents.
type eventStream[E any] struct {
	grpc.ServerStreamingClient[E]
	view func(*E) *userEvent
}

// Recv receives the next event of the stream as a userEvent.
func (s eventStream[E]) Recv() (*userEvent, error) {
	ev, err := s.ServerStreamingClient.Recv()
	if err != nil {
		return nil, err
	}
	return s.view(ev), nil
}

// mask is an update mask of paths, or none when paths is nil.
func mask(paths []string) *fieldmaskpb.FieldMask {
	if paths == nil {
		return nil
	}
	return maskPaths(paths...)
}

// v1API is apiVersion through users.v1.
type v1API struct{ c usersv1.UserServiceClient }

func (v1API) name() string                                      { return "v1" }
func (v1API) userRef(id string) string                          { return id }
func (v1API) eventRef(id string) string                         { return id }
func (v1API) webhookRef(id string) string                       { return id }
func (v1API) webhookRefOf(w webhookMsg) string                  { return w.(*usersv1.Webhook).GetId() }
func (v1API) newWebhook(ref string, w webhookFields) webhookMsg { return webhookV1(ref, w) }

// webhookV1 is w as a users.v1 Webhook with this id.
func webhookV1(id string, w webhookFields) *usersv1.Webhook {
	return &usersv1.Webhook{Id: id, Url: w.URL, EventTypes: w.EventTypes, Enabled: w.Enabled, Secret: w.Secret, ConsecutiveFailures: w.ConsecutiveFailures}
}

// userEventV1 is ev field for field.
func userEventV1(ev *usersv1.UserEvent) *userEvent {
	out := &userEvent{Ref: ev.GetId(), Type: ev.GetType(), Cursor: ev.GetCursor(), User: ev.GetUserId(), ChangedPaths: ev.GetChangedPaths(), Time: ev.GetTime()}
	if u := ev.GetUser(); u != nil {
		out.Snapshot = &userSnapshot{Ref: u.GetId(), DisplayName: u.GetDisplayName(), Deleted: u.GetState() == usersv1.User_STATE_DELETED, DeleteTime: u.GetDeleteTime()}
	}
	return out
}

func (v v1API) updateUser(ctx context.Context, id, displayName string, labels map[string]string, paths ...string) error {
	_, err := v.c.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: id, DisplayName: displayName, Labels: labels}, UpdateMask: mask(paths)})
	return err
}

func (v v1API) listUserEvents(ctx context.Context, after string, pageSize int32) ([]*userEvent, string, error) {
	res, err := v.c.ListUserEvents(ctx, &usersv1.ListUserEventsRequest{After: after, PageSize: pageSize})
	var evs []*userEvent
	for _, ev := range res.GetEvents() {
		evs = append(evs, userEventV1(ev))
	}
	return evs, res.GetNextCursor(), err
}

func (v v1API) watchUserEvents(ctx context.Context, after string) (grpc.ServerStreamingClient[userEvent], error) {
	s, err := v.c.WatchUserEvents(ctx, &usersv1.WatchUserEventsRequest{After: after})
	return eventStream[usersv1.UserEvent]{s, userEventV1}, err
}

func (v v1API) createWebhook(ctx context.Context, w *webhookFields) (webhookMsg, error) {
	req := &usersv1.CreateWebhookRequest{}
	if w != nil {
		req.Webhook = webhookV1("", *w)
	}
	return v.c.CreateWebhook(ctx, req)
}

func (v v1API) getWebhook(ctx context.Context, id string) (webhookMsg, error) {
	return v.c.GetWebhook(ctx, &usersv1.GetWebhookRequest{Id: id})
}

func (v v1API) listWebhooks(ctx context.Context) ([]webhookMsg, error) {
	res, err := v.c.ListWebhooks(ctx, &usersv1.ListWebhooksRequest{})
	var out []webhookMsg
	for _, w := range res.GetWebhooks() {
		out = append(out, w)
	}
	return out, err
}

func (v v1API) updateWebhook(ctx context.Context, id string, w webhookFields, paths ...string) (webhookMsg, error) {
	return v.c.UpdateWebhook(ctx, &usersv1.UpdateWebhookRequest{Webhook: webhookV1(id, w), UpdateMask: mask(paths)})
}

func (v v1API) deleteWebhook(ctx context.Context, id string) error {
	_, err := v.c.DeleteWebhook(ctx, &usersv1.DeleteWebhookRequest{Id: id})
	return err
}

func (v v1API) listWebhookDeliveries(ctx context.Context, id string, pageSize int32) ([]webhookDelivery, error) {
	res, err := v.c.ListWebhookDeliveries(ctx, &usersv1.ListWebhookDeliveriesRequest{WebhookId: id, PageSize: pageSize})
	var out []webhookDelivery
	for _, d := range res.GetDeliveries() {
		out = append(out, webhookDelivery{d.GetEventId(), d.GetEventType(), d.GetAttempt(), d.GetStatus(), d.GetLatency(), d.GetSuccess(), d.GetError(), d.GetTime()})
	}
	return out, err
}

// v2API is apiVersion through users.v2.
type v2API struct{ c usersv2.UserServiceClient }

func (v2API) name() string                                      { return "v2" }
func (v2API) userRef(id string) string                          { return "tenants/default/users/" + id }
func (v2API) eventRef(id string) string                         { return "userEvents/" + id }
func (v2API) webhookRef(id string) string                       { return "tenants/default/webhooks/" + id }
func (v2API) webhookRefOf(w webhookMsg) string                  { return w.(*usersv2.Webhook).GetName() }
func (v2API) newWebhook(ref string, w webhookFields) webhookMsg { return webhookV2(ref, w) }

// webhookV2 is w as a users.v2 Webhook with this name, and no backlog:
// the service of these tests has no job queue.
func webhookV2(name string, w webhookFields) *usersv2.Webhook {
	return &usersv2.Webhook{Name: name, Url: w.URL, EventTypes: w.EventTypes, Enabled: w.Enabled, Secret: w.Secret, ConsecutiveFailures: w.ConsecutiveFailures,
		Backlog: &usersv2.WebhookBacklog{Age: durationpb.New(0)}}
}

// userEventV2 is ev field for field.
func userEventV2(ev *usersv2.UserEvent) *userEvent {
	out := &userEvent{Ref: ev.GetName(), Type: ev.GetType(), Cursor: ev.GetCursor(), User: ev.GetUser(), ChangedPaths: ev.GetChangedPaths(), Time: ev.GetCreateTime()}
	if u := ev.GetSnapshot(); u != nil {
		out.Snapshot = &userSnapshot{Ref: u.GetName(), DisplayName: u.GetDisplayName(), Deleted: u.GetState() == usersv2.User_STATE_DELETED, DeleteTime: u.GetDeleteTime()}
	}
	return out
}

func (v v2API) updateUser(ctx context.Context, id, displayName string, labels map[string]string, paths ...string) error {
	_, err := v.c.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: "users/" + id, DisplayName: displayName, Labels: labels}, UpdateMask: mask(paths)})
	return err
}

func (v v2API) listUserEvents(ctx context.Context, after string, pageSize int32) ([]*userEvent, string, error) {
	res, err := v.c.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{After: after, PageSize: pageSize})
	var evs []*userEvent
	for _, ev := range res.GetEvents() {
		evs = append(evs, userEventV2(ev))
	}
	return evs, res.GetNextCursor(), err
}

func (v v2API) watchUserEvents(ctx context.Context, after string) (grpc.ServerStreamingClient[userEvent], error) {
	s, err := v.c.WatchUserEvents(ctx, &usersv2.WatchUserEventsRequest{After: after})
	return eventStream[usersv2.UserEvent]{s, userEventV2}, err
}

func (v v2API) createWebhook(ctx context.Context, w *webhookFields) (webhookMsg, error) {
	req := &usersv2.CreateWebhookRequest{}
	if w != nil {
		req.Webhook = webhookV2("", *w)
	}
	return v.c.CreateWebhook(ctx, req)
}

func (v v2API) getWebhook(ctx context.Context, name string) (webhookMsg, error) {
	return v.c.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: name})
}

func (v v2API) listWebhooks(ctx context.Context) ([]webhookMsg, error) {
	res, err := v.c.ListWebhooks(ctx, &usersv2.ListWebhooksRequest{})
	var out []webhookMsg
	for _, w := range res.GetWebhooks() {
		out = append(out, w)
	}
	return out, err
}

func (v v2API) updateWebhook(ctx context.Context, name string, w webhookFields, paths ...string) (webhookMsg, error) {
	return v.c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{Webhook: webhookV2(name, w), UpdateMask: mask(paths)})
}

func (v v2API) deleteWebhook(ctx context.Context, name string) error {
	_, err := v.c.DeleteWebhook(ctx, &usersv2.DeleteWebhookRequest{Name: name})
	return err
}

func (v v2API) listWebhookDeliveries(ctx context.Context, name string, pageSize int32) ([]webhookDelivery, error) {
	res, err := v.c.ListWebhookDeliveries(ctx, &usersv2.ListWebhookDeliveriesRequest{Parent: name, PageSize: pageSize})
	var out []webhookDelivery
	for _, d := range res.GetDeliveries() {
		out = append(out, webhookDelivery{d.GetEvent(), d.GetEventType(), d.GetAttempt(), d.GetStatus(), d.GetLatency(), d.GetSuccess(), d.GetError(), d.GetCreateTime()})
	}
	return out, err
}

// refID returns the id in ref, given the function that makes refs of
// that kind from ids (an apiVersion's userRef, eventRef or webhookRef),
// and whether ref is such a ref with a non-empty id.
func refID(ref string, prefixOf func(id string) string) (string, bool) {
	id, ok := strings.CutPrefix(ref, prefixOf(""))
	return id, ok && id != ""
}
