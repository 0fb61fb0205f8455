package grpcserver

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/names"
	"github.com/usersd/usersd/internal/users"
)

// The conversions between the domain and users.v2, one per concept. v2
// names resources by their AIP-122 names (internal/names); the fields of
// the errors they return are the domain's ("id", "user.id"), which
// fieldpaths.go turns into v2's on the way out.

// userName returns the v2 resource name of the user with the id.
func userName(id string) string { return names.Users.Name(id) }

// idOf returns the id in name, a resource name of collection c. An empty
// name is an empty id, which the domain reports as required on field; any
// other name that is not one of c's is invalid on field. Whether the id is
// a UUID is the domain's to check.
func idOf(c names.Collection, field, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	id, ok := c.ID(name)
	if !ok {
		return "", users.Invalid(field, c.NotOne(name))
	}
	return id, nil
}

// idsFromNames returns the ids in BatchGetUsers' names, or an error that
// names every malformed one.
func idsFromNames(ns []string) ([]string, error) {
	ids := make([]string, len(ns))
	inv := &users.InvalidError{}
	for i, name := range ns {
		id, ok := names.Users.ID(name)
		if !ok {
			inv.Violations = append(inv.Violations, users.FieldViolation{Field: fmt.Sprintf("ids[%d]", i), Description: names.Users.NotOne(name)})
		}
		ids[i] = id
	}
	if len(inv.Violations) > 0 {
		return nil, inv
	}
	return ids, nil
}

// toProtoV2 returns the v2 form of a user.
func toProtoV2(u *users.User) *usersv2.User {
	return &usersv2.User{
		Name:        userName(u.ID),
		Email:       u.Email,
		DisplayName: u.DisplayName,
		State:       usersv2.User_State(u.State),
		Labels:      u.Labels,
		CreateTime:  timestamppb.New(u.CreateTime),
		UpdateTime:  timestamppb.New(u.UpdateTime),
		DeleteTime:  optionalTime(u.DeleteTime),
		Etag:        u.Etag(),
	}
}

func toProtosV2(us []*users.User) []*usersv2.User {
	out := make([]*usersv2.User, len(us))
	for i, u := range us {
		out[i] = toProtoV2(u)
	}
	return out
}

// fromProtoV2 returns the fields of a v2 user that callers may set, its
// name turned into an id.
func fromProtoV2(u *usersv2.User) (*users.User, error) {
	if u == nil {
		return nil, nil
	}
	id, err := idOf(names.Users, "user.id", u.GetName())
	if err != nil {
		return nil, err
	}
	out := settableV2(u)
	out.ID = id
	return out, nil
}

// importRowV2 is a v2 row of an import with only the fields a caller may
// set; see importRows.
func importRowV2(u *usersv2.User) *usersv2.User {
	return &usersv2.User{Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: u.GetState(), Labels: u.GetLabels()}
}

// settableV2 returns the fields of a v2 user that callers may set, but
// its name: all of a row that importRowV2 made.
func settableV2(u *usersv2.User) *users.User {
	return &users.User{Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: users.State(u.GetState()), Labels: u.GetLabels()}
}

// pathsV2 returns an update mask's paths in the domain's terms: v2's name,
// like v1's id, identifies the user and is ignored as a path; "id" is no
// field of v2's User.
func pathsV2(paths []string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		switch p {
		case "id":
			return nil, users.Invalid("update_mask", `unknown field "id" (v2 names users by name)`)
		case "name":
			p = "id"
		}
		out[i] = p
	}
	return out, nil
}

// operationToProtoV2 returns the v2 form of an operation: its progress,
// and its outcome once it is done.
func operationToProtoV2(op *users.Operation) *usersv2.Operation {
	pb := &usersv2.Operation{
		Name: names.Operations.Name(op.ID),
		Done: op.Done(),
		Metadata: &usersv2.ImportUsersMetadata{
			Total:      int32(op.Total),
			Imported:   int32(op.Imported),
			Failed:     int32(op.Failed),
			CreateTime: timestamppb.New(op.CreateTime),
			UpdateTime: timestamppb.New(op.UpdateTime),
		},
	}
	if pb.Done {
		pb.Response = &usersv2.ImportUsersResponse{Failures: make([]*usersv2.ImportFailure, len(op.Failures))}
		for i, f := range op.Failures {
			pb.Response.Failures[i] = &usersv2.ImportFailure{Index: int32(f.Index), Reason: f.Reason}
		}
	}
	return pb
}

// eventToProtoV2 returns the v2 form of an event.
func eventToProtoV2(ev users.Event) *usersv2.UserEvent {
	pb := &usersv2.UserEvent{
		Name:         names.UserEvents.Name(ev.ID),
		Type:         string(ev.Type),
		User:         userName(ev.UserID),
		ChangedPaths: changedPaths(ev.Paths),
		CreateTime:   timestamppb.New(ev.Time),
		Cursor:       ev.Pos.Cursor(),
		Traceparent:  ev.TraceParent,
	}
	if ev.User != nil {
		pb.Snapshot = toProtoV2(ev.User)
	}
	return pb
}

// webhookToProtoV2 returns the v2 form of a subscription with its backlog
// b at now; with its secret only when withSecret is true.
func webhookToProtoV2(w *users.Webhook, withSecret bool, b users.WebhookBacklog, now time.Time) *usersv2.Webhook {
	backlog := &usersv2.WebhookBacklog{Events: int64(b.Events), Age: durationpb.New(b.Age(now))}
	if b.Events > 0 {
		backlog.OldestEventTime = timestamppb.New(b.Oldest)
	}
	return &usersv2.Webhook{
		Backlog:             backlog,
		LastSuccessTime:     timestampOrNil(w.LastSuccessTime),
		LastFailureTime:     timestampOrNil(w.LastFailureTime),
		Name:                names.Webhooks.Name(w.ID),
		Url:                 w.URL,
		EventTypes:          eventTypeNames(w.EventTypes),
		Secret:              secretIf(w, withSecret),
		Enabled:             w.Enabled,
		ConsecutiveFailures: int32(w.ConsecutiveFailures),
		DisabledReason:      w.DisabledReason,
		CreateTime:          timestamppb.New(w.CreateTime),
		UpdateTime:          timestamppb.New(w.UpdateTime),
	}
}

// deliveryToProtoV2 returns the v2 form of a delivery attempt.
func deliveryToProtoV2(a users.DeliveryAttempt) *usersv2.WebhookDelivery {
	return &usersv2.WebhookDelivery{
		Event:      names.UserEvents.Name(a.EventID),
		EventType:  string(a.EventType),
		Attempt:    int32(a.Attempt),
		Status:     int32(a.Status),
		Latency:    durationpb.New(a.Latency),
		Success:    a.Success,
		Error:      a.Error,
		CreateTime: timestamppb.New(a.Time),
	}
}

// timestampOrNil is t as a Timestamp, or nil (unset) when t is zero.
func timestampOrNil(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
