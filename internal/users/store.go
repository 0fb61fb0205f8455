package users

import (
	"context"
	"time"
)

// Store is every store a Service needs: one interface per concept, each
// declared here by the Service that consumes it. One value may implement
// them all, as the SQL stores do.
//
// Every method of every store runs in one transaction and honours ctx: a
// cancelled context cancels the statement in flight.
//
// Every method that changes users appends their events (see Event) to the
// store's outbox in the same transaction, so an event exists if and only if
// its change committed. Events carry the trace parent of ctx (TraceParent).
//
// Implementations are tested by the conformance suite in package userstest,
// which has one part per interface.
type Store interface {
	UserStore
	ImportStore
	EventStore
	WebhookStore
	SinkStore
	TenantStore
	GroupStore
}

// UserStore keeps users. Every user belongs to a tenant; the methods that
// take a tenant act on that tenant's users only, and on none while the
// tenant is deleted (or does not exist): then they return ErrNotFound, as
// for a user that does not exist.
type UserStore interface {
	// CreateUser inserts u into the tenant u.Tenant. If key is not nil,
	// the insert is idempotent: when a user of the tenant was already
	// created with key.RequestID and the same key.Fingerprint, CreateUser
	// returns that user (as it is now) and inserts nothing; with another
	// fingerprint it returns an *InvalidError with Reason
	// ReasonRequestIDReused. It returns ErrEmailTaken when a user of the
	// tenant that is not deleted has the same EmailKey, ErrNotFound when
	// the tenant does not exist or is deleted, and a *QuotaError when the
	// tenant's MaxUsers users that are not deleted exist already, and
	// ErrExternalIDTaken when such a user has the same ExternalID. A user
	// it inserts gets a CreatedEvent; a replay appends no event.
	CreateUser(ctx context.Context, u *User, key *IdempotencyKey) (*User, error)

	// GetUser returns the tenant's user with the id, deleted or not, or
	// ErrNotFound.
	GetUser(ctx context.Context, tenant, id string) (*User, error)

	// BatchGetUsers returns the tenant's users with the given ids that
	// exist, in any order; ids that match no user of the tenant are left
	// out.
	BatchGetUsers(ctx context.Context, tenant string, ids []string) ([]*User, error)

	// ListUsers returns up to q.Limit users of the tenant q.Tenant that
	// match q, in q's order, starting after q.After.
	ListUsers(ctx context.Context, q ListQuery) ([]*User, error)

	// CountUsers counts the users of the tenant q.Tenant that match q
	// (q.After, q.Order and q.Limit aside), up to limit. When more match,
	// it returns an estimate above limit, or limit+1 when it has none,
	// and exact false.
	CountUsers(ctx context.Context, q ListQuery, limit int) (n int64, exact bool, err error)

	// LookupUser returns the tenant's user that is not deleted and has the
	// external id, or ErrNotFound.
	LookupUser(ctx context.Context, tenant, externalID string) (*User, error)

	// UpdateUser reads the tenant's user with the id, locks it, and calls
	// fn with a copy. If fn returns nil, it stores the changed copy with
	// Revision incremented and returns it; if fn returns an error, nothing
	// changes and UpdateUser returns that error. It returns ErrNotFound for
	// an unknown id, ErrEmailTaken when the new email collides and
	// ErrExternalIDTaken when the new external id does. A change
	// that makes a deleted user live again returns a *QuotaError when the
	// tenant is at its MaxUsers. A stored change appends the ChangeEvent of
	// the user as read and as written, when there is one. A change that
	// makes the user DELETED also removes its group memberships, each with
	// a MemberEvent (EventGroupMemberRemoved) after the ChangeEvent, in
	// group id order, and lowers the groups' MemberCount.
	UpdateUser(ctx context.Context, tenant, id string, fn func(*User) error) (*User, error)

	// PurgeDeleted hard-deletes up to limit users that have been DELETED
	// since before the given time, or whose tenant has, with their
	// idempotency keys, and returns how many it removed. Each user removed
	// gets a PurgedEvent. A deleted tenant that has no users left is
	// removed too, with its operations and webhook subscriptions.
	PurgeDeleted(ctx context.Context, before time.Time, limit int) (int, error)

	// ExportUsers calls fn for every user of the tenant q.Tenant that
	// matches q.Filter (deleted ones too when q.ShowDeleted is set; q.Order,
	// q.Search, q.After and q.Limit aside), by CreateTime, then id. It
	// reads them all from one snapshot, taken before the first call of fn,
	// in which it also checks the tenant: ErrNotFound, and no call of fn,
	// when the tenant does not exist or is deleted. It holds a bounded
	// number of users in memory, however many it exports. An error of fn
	// stops the export and ExportUsers returns it as fn did.
	ExportUsers(ctx context.Context, q ListQuery, fn func(*User) error) error
}

// ImportStore keeps the long-running operations: bulk imports, their
// operations and the users they insert, and schema checks (whose
// operations TenantStore starts).
type ImportStore interface {
	// CreateImport stores op, in the tenant op.Tenant, and, in the same
	// transaction, enqueues one job per chunk, so that the import runs if
	// and only if op is stored. If an operation of the tenant was already
	// created with key.RequestID and the same key.Fingerprint, it returns
	// that operation (with its progress now) and stores and enqueues
	// nothing; with another fingerprint it returns an *InvalidError with
	// Reason ReasonRequestIDReused. It returns ErrNotFound when the tenant
	// does not exist or is deleted.
	CreateImport(ctx context.Context, op *Operation, key IdempotencyKey, chunks []ImportChunk) (*Operation, error)

	// GetOperation returns the tenant's operation with the id, its
	// progress summed over the chunks that have finished and Failures
	// sorted by Index, or ErrNotFound.
	GetOperation(ctx context.Context, tenant, id string) (*Operation, error)

	// ImportChunk records chunk number chunk of operation opID as finished,
	// in one transaction: it inserts each valid user into the operation's
	// tenant, unless the address belongs to a user of the tenant that is
	// not deleted (then the row fails with ReasonEmailTaken), the external
	// id to such a user (ReasonExternalIDTaken), or the tenant
	// is at its MaxUsers (ReasonQuota), and stores the chunk's counts and
	// failures. If the chunk was already recorded it does nothing, so
	// running a chunk twice imports its rows once. It returns ErrNotFound
	// for an unknown operation. Each user inserted gets a CreatedEvent, in
	// row order.
	ImportChunk(ctx context.Context, opID string, chunk int, valid []ImportedUser, failed []RowFailure) error

	// RecordSchemaCheck records the outcome of the schema check opID (its
	// one chunk, as finished now): checked users, violating of them, and
	// samples, its Failures. If the check was already recorded it does
	// nothing, so a check that runs twice keeps its first record. It
	// returns ErrNotFound when no schema check has the id.
	RecordSchemaCheck(ctx context.Context, opID string, checked, violating int, samples []RowFailure) error
}

// EventStore reads and trims the event feed: the outbox that the other
// stores' changes append to.
type EventStore interface {
	// ListEvents returns up to limit events of the tenant (of every
	// tenant for AllTenants) that come after the position after, in feed
	// order (EventPos.Less), with their Pos set. It returns
	// an event only once no event can ever appear before it: a reader that
	// passes the Pos of the last event it read as after never misses an
	// event and never reads one twice, however many transactions append
	// events concurrently. A limit of zero or less returns no events.
	ListEvents(ctx context.Context, tenant string, after EventPos, limit int) ([]Event, error)

	// PurgeEvents deletes up to limit events appended before the given
	// time, oldest first, and returns how many it removed. Positions stay
	// valid: the feed after a purged event's Pos goes on with the events
	// that remain.
	PurgeEvents(ctx context.Context, before time.Time, limit int) (int, error)

	// GetEvent returns the event with the id, or ErrNotFound.
	GetEvent(ctx context.Context, id string) (*Event, error)
}

// WebhookStore keeps webhook subscriptions and their delivery attempts,
// and dispatches the event feed to them.
type WebhookStore interface {
	// CreateWebhook stores w in the tenant w.Tenant. It returns an
	// *InvalidError on field "webhook" when MaxWebhooks subscriptions
	// exist, ErrIDTaken when a subscription with w.ID is stored, and
	// ErrNotFound when the tenant does not exist or is deleted.
	CreateWebhook(ctx context.Context, w *Webhook) (*Webhook, error)
	// GetWebhook returns the tenant's subscription with the id (any
	// tenant's for AllTenants), or ErrNotFound.
	GetWebhook(ctx context.Context, tenant, id string) (*Webhook, error)
	// ListWebhooks returns the tenant's subscriptions (every tenant's for
	// AllTenants) by CreateTime, then id.
	ListWebhooks(ctx context.Context, tenant string) ([]*Webhook, error)
	// UpdateWebhook reads the tenant's subscription, locks it, and stores
	// what fn made of a copy; as UpdateUser. ErrNotFound for an unknown
	// id.
	UpdateWebhook(ctx context.Context, tenant, id string, fn func(*Webhook) error) (*Webhook, error)
	// DeleteWebhook deletes the tenant's subscription and its delivery
	// attempts, or returns ErrNotFound.
	DeleteWebhook(ctx context.Context, tenant, id string) error
	// RecordDeliveryAttempts stores the attempts to the subscription
	// webhookID (every one's WebhookID) and, in the same transaction,
	// applies each in turn to the subscription as Webhook.Record does: a
	// success sets ConsecutiveFailures to 0, a failure adds one, and when
	// that reaches disableAfter the subscription is disabled with a
	// DisabledReason naming that attempt's error. It returns the
	// subscription as it is then, or ErrNotFound when it is gone.
	RecordDeliveryAttempts(ctx context.Context, webhookID string, as []DeliveryAttempt, disableAfter int) (*Webhook, error)
	// PurgeDeliveryAttempts deletes the delivery attempts made before the
	// time and returns how many.
	PurgeDeliveryAttempts(ctx context.Context, before time.Time) (int, error)
	// ListDeliveryAttempts returns up to limit attempts to the
	// subscription, newest first.
	ListDeliveryAttempts(ctx context.Context, webhookID string, limit int) ([]DeliveryAttempt, error)
	// DispatchEvents reads, in one transaction, the position of the
	// webhook dispatcher (before every event at first), up to limit events
	// after it in feed order (the same events ListEvents would return), and
	// the enabled subscriptions; it enqueues one delivery job per event and
	// subscription that Wants it (its tenant and type), through the store's job queue in
	// the same transaction, advances the position past the events read, and
	// commits. It returns how many events it read. Concurrent calls take
	// turns, so no event is dispatched twice.
	DispatchEvents(ctx context.Context, limit int) (int, error)
}

// SinkStore keeps the feed positions of the relays that publish the event
// feed elsewhere, so that they resume where they stopped.
type SinkStore interface {
	// SinkPosition returns the feed position saved under name (the zero
	// EventPos when none is); SetSinkPosition saves it.
	SinkPosition(ctx context.Context, name string) (EventPos, error)
	SetSinkPosition(ctx context.Context, name string, pos EventPos) error
}

// IdempotencyKey makes CreateUser safe to retry.
type IdempotencyKey struct {
	// RequestID is the caller's key.
	RequestID string
	// Fingerprint identifies the request; the same request always has the
	// same fingerprint.
	Fingerprint []byte
}

// ListQuery says which users ListUsers returns.
type ListQuery struct {
	// Tenant is the tenant whose users are listed.
	Tenant      string
	Filter      Filter
	Order       Order
	ShowDeleted bool
	// Search, when not nil, keeps the users that match it, and Order is
	// then OrderRank.
	Search *Search
	// After, when not nil, is the position of the last user of the previous
	// page: only users after it in Order are returned.
	After *Cursor
	// Limit is the maximum number of users to return.
	Limit int
}

// Cursor is a position in a list: the sort key of a user and its id.
type Cursor struct {
	CreateTime time.Time // when Order.Field is OrderCreateTime
	EmailKey   string    // when Order.Field is OrderEmail
	Rank       int       // when Order.Field is OrderRank
	ID         string
}

// OrderField is a field ListUsers can sort by. Ties are broken by id.
type OrderField int

// The sortable fields.
const (
	OrderCreateTime OrderField = iota
	OrderEmail
	// OrderRank is a search's order: by SearchRank, then id (the order
	// of creation: ids are UUIDv7). Only a search has it.
	OrderRank
)

// Order is the sort order of a list.
type Order struct {
	Field OrderField
	Desc  bool
}

// Filter is a conjunction of conditions: a user matches when it meets them all.
type Filter []Condition

// FilterField is a field a filter can test.
type FilterField int

// The filterable fields.
const (
	FieldState FilterField = iota
	FieldEmail
	FieldDisplayName
	FieldCreateTime
	FieldUpdateTime
	FieldExternalID
	FieldGivenName
	FieldFamilyName
	FieldPhoneNumber
	FieldLocale
	FieldTimeZone
	FieldEmailVerified
	FieldPhoneVerified
	// FieldAttribute is the value at Condition.Path in the user's
	// attributes.
	FieldAttribute
	// FieldGroup is the user's membership of the group whose id is the
	// Value: OpEq holds for its members, OpNe for the other users.
	FieldGroup
)

// Op is a comparison operator.
type Op int

// The comparison operators.
const (
	OpEq Op = iota
	OpNe
	OpLt
	OpLe
	OpGt
	OpGe
	// OpHas tests presence (AIP-160 "field:*"); its Value is nil.
	OpHas
)

// Condition compares one field with a value. Value's type depends on Field:
// State for FieldState; string for FieldEmail (already an EmailKey),
// FieldDisplayName and the optional text fields (FieldExternalID,
// FieldGivenName, FieldFamilyName, FieldPhoneNumber, FieldLocale,
// FieldTimeZone); time.Time for FieldCreateTime and FieldUpdateTime; bool
// for FieldEmailVerified and FieldPhoneVerified; string, float64, bool or
// nil (JSON null) for FieldAttribute; a group id for FieldGroup. With OpHas, Value is nil.
//
// The optional text fields take OpEq, OpNe and OpHas, "" standing for
// unset (the stores keep an unset external id as NULL and compare it as
// ""): != "x" holds for users without the field. The verified fields take
// OpEq and OpNe. A FieldAttribute condition tests the value at Path and
// holds only when a value is there with the JSON type of Value (string,
// number, boolean or null): OpNe holds when that value differs, so neither
// OpEq nor OpNe holds where the path is absent or has another type. OpLt,
// OpLe, OpGt and OpGe compare numbers numerically and strings bytewise;
// they take no bool or nil. For nil, OpNe and OpHas both hold when the
// path has a value other than null.
type Condition struct {
	Field FilterField
	Op    Op
	Value any
	// Path is, for FieldAttribute, the keys from the attributes object
	// down to the value tested: 1 to MaxFilterPathKeys keys, each a letter
	// or _ and up to 62 more letters, digits, _ or -. It is nil for the
	// other fields.
	Path []string
}
