package users

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// EventType says what happened to a user.
type EventType string

// The event types. They are stored, and clients see them: never rename one.
const (
	EventCreated   EventType = "user.created"
	EventUpdated   EventType = "user.updated"
	EventDeleted   EventType = "user.deleted"
	EventUndeleted EventType = "user.undeleted"
	EventPurged    EventType = "user.purged"

	// The events of groups (Event.GroupID names the group). A member
	// event names the user too (Event.UserID); the others carry the group
	// (Event.Group) and no user.
	EventGroupCreated       EventType = "group.created"
	EventGroupUpdated       EventType = "group.updated"
	EventGroupDeleted       EventType = "group.deleted"
	EventGroupMemberAdded   EventType = "group.member_added"
	EventGroupMemberRemoved EventType = "group.member_removed"
)

// IsGroupEvent reports whether t is an event of a group.
func (t EventType) IsGroupEvent() bool { return strings.HasPrefix(string(t), "group.") }

// Limits of the event feed.
const (
	// DefaultEventPageSize is ListEvents' page size when the caller sets
	// none; MaxEventPageSize is the largest it returns.
	DefaultEventPageSize = 100
	MaxEventPageSize     = 1000
	// DefaultEventRetention is how long PurgeEvents keeps events.
	DefaultEventRetention = 7 * 24 * time.Hour
)

// Event is an entry of the outbox: one change to one user, appended by the
// store in the transaction that made the change, so that it exists if and
// only if the change committed. See docs/events.md.
type Event struct {
	// Pos is the event's place in the feed, assigned by the store when it
	// appends the event. Pos.Cursor() resumes the feed after this event.
	Pos EventPos
	// ID identifies the event (a UUIDv7): consumers that may see an event
	// twice, through retries of their own, deduplicate on it.
	ID string
	// Tenant is the id of the user's tenant.
	Tenant string
	Type   EventType
	// UserID is the user's id: the user changed, or the member of a
	// member event; "" for the other group events.
	UserID string
	// User is the user as the change left it; nil for EventPurged and the
	// group events.
	User *User
	// GroupID is the group's id, for the group events; "" otherwise.
	GroupID string
	// Group is the group as the change left it (as it was, for
	// EventGroupDeleted), for EventGroupCreated, EventGroupUpdated and
	// EventGroupDeleted; nil otherwise.
	Group *Group
	// Paths are the fields the change set, in snake_case and in the order
	// of ChangedPaths, for EventUpdated,
	// EventDeleted and EventUndeleted. They are empty for EventCreated and
	// EventPurged. update_time and revision change with every change and
	// are never listed.
	Paths []string
	// Time is when the event was appended, in UTC at microsecond precision.
	Time time.Time
	// TraceParent is the W3C traceparent of the span that made the change,
	// or "" when the change was made outside any trace.
	TraceParent string
}

// EventPos is a position in the event feed. The feed is ordered by Tx, then
// Seq. The zero EventPos is before every event.
type EventPos struct {
	// Tx orders events by the transaction that appended them, on stores
	// whose sequence numbers are not handed out in commit order (Postgres:
	// the transaction's xid8). Stores that commit in Seq order leave it 0.
	Tx uint64
	// Seq orders events by when they were appended.
	Seq int64
}

// Less reports whether p comes before q in the feed.
func (p EventPos) Less(q EventPos) bool {
	return cmp.Or(cmp.Compare(p.Tx, q.Tx), cmp.Compare(p.Seq, q.Seq)) < 0
}

const eventCursorVersion = 1

// Cursor returns p as the opaque string clients resume the feed with; the
// zero EventPos is "". The encoding is stable: cursors stay valid across
// restarts and releases.
//
// Cursors are not signed, unlike page tokens: a consumer keeps its cursor
// for as long as it follows the feed, which must not end when the page
// token key is rotated, and a made-up cursor shows nothing that the cursor
// "" does not.
func (p EventPos) Cursor() string {
	if p == (EventPos{}) {
		return ""
	}
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64)
	b = append(b, eventCursorVersion)
	b = binary.AppendUvarint(b, p.Tx)
	b = binary.AppendUvarint(b, uint64(p.Seq))
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadCursor = errors.New("malformed event cursor")

// ParseEventCursor reads a cursor that EventPos.Cursor wrote; "" is the
// zero EventPos. It accepts only the exact string Cursor writes.
func ParseEventCursor(s string) (EventPos, error) {
	if s == "" {
		return EventPos{}, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 3 || b[0] != eventCursorVersion {
		return EventPos{}, errBadCursor
	}
	tx, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return EventPos{}, errBadCursor
	}
	seq, m := binary.Uvarint(b[1+n:])
	if m <= 0 || 1+n+m != len(b) || seq > 1<<63-1 {
		return EventPos{}, errBadCursor
	}
	p := EventPos{Tx: tx, Seq: int64(seq)}
	// One position, one cursor: refuse padding in the varints, other
	// base64 spellings, and line breaks the decoder would skip.
	if p.Cursor() != s {
		return EventPos{}, errBadCursor
	}
	return p, nil
}

// TraceParent returns the W3C traceparent header of the span in ctx
// ("00-<trace id>-<span id>-<flags>"), or "" when ctx carries no valid span
// context. Stores record it with the events of a change.
func TraceParent(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// newEvent returns an event of type typ about the tenant's user with the
// id, with a new id, the current time and the trace parent of ctx.
func newEvent(ctx context.Context, typ EventType, tenant, userID string, u *User, paths []string) Event {
	if u != nil {
		u = u.Clone()
	}
	return Event{
		ID:          NewID(),
		Tenant:      tenant,
		Type:        typ,
		UserID:      userID,
		User:        u,
		Paths:       paths,
		Time:        Now(),
		TraceParent: TraceParent(ctx),
	}
}

// CreatedEvent returns the user.created event of u, which the store has
// just inserted as it stands.
func CreatedEvent(ctx context.Context, u *User) Event {
	return newEvent(ctx, EventCreated, u.Tenant, u.ID, u, nil)
}

// PurgedEvent returns the user.purged event of the tenant's user with the
// id.
func PurgedEvent(ctx context.Context, tenant, id string) Event {
	return newEvent(ctx, EventPurged, tenant, id, nil, nil)
}

// GroupEvent returns the event of type typ (EventGroupCreated,
// EventGroupUpdated or EventGroupDeleted) of g as the change left it, with
// the paths of an update.
func GroupEvent(ctx context.Context, typ EventType, g *Group, paths []string) Event {
	c := *g
	ev := newEvent(ctx, typ, g.Tenant, "", nil, paths)
	ev.GroupID, ev.Group = g.ID, &c
	return ev
}

// MemberEvent returns the event of type typ (EventGroupMemberAdded or
// EventGroupMemberRemoved) of the tenant's user and group.
func MemberEvent(ctx context.Context, typ EventType, tenant, groupID, userID string) Event {
	ev := newEvent(ctx, typ, tenant, userID, nil, nil)
	ev.GroupID = groupID
	return ev
}

// ChangeEvent returns the event of an update from old to new, new as the
// store writes it, and reports false when the update changed none of the
// fields an event lists (see Event.Paths): such an update appends no event.
// The type follows the state: a user that becomes DELETED is
// EventDeleted, one that stops being DELETED EventUndeleted, anything else
// EventUpdated.
func ChangeEvent(ctx context.Context, old, new *User) (Event, bool) {
	paths := ChangedPaths(old, new)
	if len(paths) == 0 {
		return Event{}, false
	}
	typ := EventUpdated
	switch wasDeleted, isDeleted := old.State == StateDeleted, new.State == StateDeleted; {
	case !wasDeleted && isDeleted:
		typ = EventDeleted
	case wasDeleted && !isDeleted:
		typ = EventUndeleted
	}
	return newEvent(ctx, typ, new.Tenant, new.ID, new, paths), true
}

// ChangedPaths returns the fields that differ between a and b, by their
// snake_case names, in the order email, display_name, state, labels, the
// profile fields (as appendProfilePaths), delete_time. Labels compare as
// maps: nil equals empty.
func ChangedPaths(a, b *User) []string {
	var paths []string
	if a.Email != b.Email {
		paths = append(paths, "email")
	}
	if a.DisplayName != b.DisplayName {
		paths = append(paths, "display_name")
	}
	if a.State != b.State {
		paths = append(paths, "state")
	}
	if !maps.Equal(a.Labels, b.Labels) {
		paths = append(paths, "labels")
	}
	paths = appendProfilePaths(paths, &a.Profile, &b.Profile)
	if !a.DeleteTime.Equal(b.DeleteTime) {
		paths = append(paths, "delete_time")
	}
	return paths
}

// EventPage is a page of the event feed.
type EventPage struct {
	Events []Event
	// Next is the cursor to pass as after for the events that follow: the
	// cursor of the last event of the page, or, on an empty page, the
	// cursor the call was given.
	Next string
}

// ListEvents returns up to pageSize events of the tenant (of every tenant
// for AllTenants) that follow the cursor after ("" for the beginning of
// the feed), in feed order. A consumer that
// resumes from the last cursor it processed, an event's Pos.Cursor() or a
// page's Next, sees every event exactly once. See docs/events.md.
func (s *Service) ListEvents(ctx context.Context, tenant, after string, pageSize int) (*EventPage, error) {
	tenant, err := s.inTenant(ctx, "parent", tenant)
	if err != nil {
		return nil, err
	}
	switch {
	case pageSize < 0:
		return nil, Invalid("page_size", "must not be negative")
	case pageSize == 0:
		pageSize = DefaultEventPageSize
	case pageSize > MaxEventPageSize:
		pageSize = MaxEventPageSize
	}
	pos, err := ParseEventCursor(after)
	if err != nil {
		return nil, Invalid("after", fmt.Sprintf("%v: pass \"\" or a cursor from the feed", err))
	}
	evs, err := s.store.ListEvents(ctx, tenant, pos, pageSize)
	if err != nil {
		return nil, err
	}
	page := &EventPage{Events: evs, Next: pos.Cursor()}
	if len(evs) > 0 {
		page.Next = evs[len(evs)-1].Pos.Cursor()
	}
	return page, nil
}

// eventPurgeBatch bounds how many events one PurgeEvents transaction
// removes.
const eventPurgeBatch = 5000

// PurgeEvents deletes the events appended longer ago than the retention,
// in batches, and returns how many it removed; then the webhook delivery
// attempts of the same age. A consumer further behind
// than the retention misses the events purged before it read them.
func (s *Service) PurgeEvents(ctx context.Context) (int, error) {
	before := s.clock().Add(-s.eventRetention)
	total := 0
	for {
		n, err := s.store.PurgeEvents(ctx, before, eventPurgeBatch)
		total += n
		if err != nil {
			return total, err
		}
		if n < eventPurgeBatch {
			break
		}
	}
	// The record of deliveries is kept as long as the events.
	_, err := s.store.PurgeDeliveryAttempts(ctx, before)
	return total, err
}
