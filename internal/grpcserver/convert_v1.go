package grpcserver

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/names"
	"github.com/usersd/usersd/internal/users"
)

// The conversions between the domain and users.v1, one per concept. v1
// names resources by bare ids.

// toProto returns the v1 form of a user.
func toProto(u *users.User) *usersv1.User {
	return &usersv1.User{
		Id:          u.ID,
		Email:       u.Email,
		DisplayName: u.DisplayName,
		State:       usersv1.User_State(u.State),
		Labels:      u.Labels,
		CreateTime:  timestamppb.New(u.CreateTime),
		UpdateTime:  timestamppb.New(u.UpdateTime),
		DeleteTime:  optionalTime(u.DeleteTime),
		Etag:        u.Etag(),
	}
}

func toProtos(us []*users.User) []*usersv1.User {
	out := make([]*usersv1.User, len(us))
	for i, u := range us {
		out[i] = toProto(u)
	}
	return out
}

// fromProto returns the fields of a v1 user that callers may set.
func fromProto(u *usersv1.User) *users.User {
	if u == nil {
		return nil
	}
	return &users.User{
		ID:          u.GetId(),
		Email:       u.GetEmail(),
		DisplayName: u.GetDisplayName(),
		State:       users.State(u.GetState()),
		Labels:      u.GetLabels(),
	}
}

// importRowV1 is a v1 row of an import with only the fields a caller may
// set; see importRows.
func importRowV1(u *usersv1.User) *usersv1.User {
	return &usersv1.User{Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: u.GetState(), Labels: u.GetLabels()}
}

// operationToProto returns the v1 form of an import's operation: v2's,
// whose messages are v1's field for field but for those of schema checks,
// which v1 does not serve (TestOperationShapesMatch).
func operationToProto(op *users.Operation) *usersv1.Operation {
	pb := sameShape[*usersv1.Operation](operationToProtoV2(op))
	pb.Name = names.Operations.Name(op.ID) // v1's names have no tenant
	return pb
}

// eventToProto returns the v1 form of an event.
func eventToProto(ev users.Event) *usersv1.UserEvent {
	pb := &usersv1.UserEvent{
		Id:           ev.ID,
		Type:         string(ev.Type),
		UserId:       ev.UserID,
		ChangedPaths: changedPaths(basePaths(ev.Paths)),
		Time:         timestamppb.New(ev.Time),
		Cursor:       ev.Pos.Cursor(),
		Traceparent:  ev.TraceParent,
	}
	if ev.User != nil {
		pb.User = toProto(ev.User)
	}
	return pb
}

// webhookToProto returns the v1 form of a subscription; with its secret
// only when withSecret is true.
func webhookToProto(w *users.Webhook, withSecret bool) *usersv1.Webhook {
	return &usersv1.Webhook{
		Id:                  w.ID,
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

// deliveryToProto returns the v1 form of a delivery attempt.
func deliveryToProto(a users.DeliveryAttempt) *usersv1.WebhookDelivery {
	return &usersv1.WebhookDelivery{
		EventId:   a.EventID,
		EventType: string(a.EventType),
		Attempt:   int32(a.Attempt),
		Status:    int32(a.Status),
		Latency:   durationpb.New(a.Latency),
		Success:   a.Success,
		Error:     a.Error,
		Time:      timestamppb.New(a.Time),
	}
}

// basePaths returns the paths of a change that name fields of v1's user:
// v1 shows no profile field, and a change of one alone reads in v1 as an
// update that names no field.
func basePaths(paths []string) []string {
	out := paths[:0:0]
	for _, p := range paths {
		if users.IsBaseField(p) {
			out = append(out, p)
		}
	}
	return out
}
