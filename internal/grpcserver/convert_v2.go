package grpcserver

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/names"
	"github.com/usersd/usersd/internal/users"
)

// The conversions between the domain and users.v2, one per concept. v2
// names resources by their AIP-122 names (internal/names); the fields of
// the errors they return are the domain's ("id", "user.id"), which
// fieldpaths.go turns into v2's on the way out.

// userName returns the v2 resource name of the tenant's user with the id.
func userName(tenant, id string) string { return names.Users.InTenant(tenant, id) }

// tenantName returns the v2 resource name of the tenant.
func tenantName(tenant string) string { return names.Tenants.Name(tenant) }

// scopedOf returns the tenant and the id in name, the resource name of a
// tenant's resource in collection c: "tenants/{tenant}/{c}/{id}", or
// "{c}/{id}" for the default tenant's, whose tenant is "" (the domain's
// default). An empty name is an empty id, which the domain reports as
// required on field; any other name that is not one of c's is invalid on
// field. Whether the tenant and the id are well formed is the domain's to
// check.
func scopedOf(c names.Collection, field, name string) (tenant, id string, err error) {
	if name == "" {
		return "", "", nil
	}
	tenant, id, ok := c.Scoped(name)
	if !ok {
		return "", "", users.Invalid(field, c.NotScoped(name))
	}
	return tenant, id, nil
}

// parentOf returns the tenant id in parent, "tenants/{tenant}" (or
// "tenants/-", AllTenants, where a call allows it); "" for an empty
// parent, the default tenant.
func parentOf(parent string) (string, error) {
	if parent == "" {
		return "", nil
	}
	tenant, ok := names.Tenants.ID(parent)
	if !ok || strings.Contains(tenant, "/") {
		return "", users.Invalid("parent", names.Tenants.NotOne(parent))
	}
	return tenant, nil
}

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

// idsFromNames returns the tenant and the ids of BatchGetUsers' parent and
// names, or an error that names every malformed name and every name of
// another tenant than the parent's (or, without a parent, than the first
// name's): one call reads one tenant.
func idsFromNames(parent string, ns []string) (string, []string, error) {
	tenant, err := parentOf(parent)
	if err != nil {
		return "", nil, err
	}
	tenant = orDefault(tenant)
	fromParent := parent != ""
	ids := make([]string, len(ns))
	inv := &users.InvalidError{}
	for i, name := range ns {
		t, id, ok := names.Users.Scoped(name)
		switch t = orDefault(t); {
		case !ok:
			inv.Violations = append(inv.Violations, users.FieldViolation{Field: fmt.Sprintf("ids[%d]", i), Description: names.Users.NotScoped(name)})
		case i == 0 && !fromParent:
			tenant = t
		case t != tenant:
			inv.Violations = append(inv.Violations, users.FieldViolation{Field: fmt.Sprintf("ids[%d]", i), Description: fmt.Sprintf("%q is not a user of %s: one call reads one tenant", name, tenantName(tenant))})
		}
		ids[i] = id
	}
	if len(inv.Violations) > 0 {
		return "", nil, inv
	}
	return tenant, ids, nil
}

// orDefault is the tenant id, or the default tenant's for "".
func orDefault(tenant string) string {
	if tenant == "" {
		return users.DefaultTenant
	}
	return tenant
}

// toProtoV2 returns the v2 form of a user.
func toProtoV2(u *users.User) *usersv2.User {
	return &usersv2.User{
		Name:        userName(u.Tenant, u.ID),
		Email:       u.Email,
		DisplayName: u.DisplayName,
		State:       usersv2.User_State(u.State),
		Labels:      u.Labels,
		CreateTime:  timestamppb.New(u.CreateTime),
		UpdateTime:  timestamppb.New(u.UpdateTime),
		DeleteTime:  optionalTime(u.DeleteTime),
		Etag:        u.Etag(),

		ExternalId:    u.ExternalID,
		GivenName:     u.GivenName,
		FamilyName:    u.FamilyName,
		PhoneNumber:   u.PhoneNumber,
		EmailVerified: u.EmailVerified,
		PhoneVerified: u.PhoneVerified,
		Locale:        u.Locale,
		TimeZone:      u.TimeZone,
		Attributes:    attributesStruct(u.Attributes),
	}
}

// attributesStruct returns stored attributes, or a stored schema (a JSON
// object), as a Struct, nil for none.
func attributesStruct(a []byte) *structpb.Struct {
	if len(a) == 0 {
		return nil
	}
	if st, ok := attributesStructFast(a); ok {
		return st
	}
	st := &structpb.Struct{}
	if err := protojson.Unmarshal(a, st); err != nil {
		// Stored attributes are an object the domain checked: this is
		// a bug, and the answer must not hide the field.
		panic(fmt.Sprintf("stored attributes are no JSON object: %v", err))
	}
	return st
}

// attributesJSON returns a Struct as JSON, nil for none.
func attributesJSON(st *structpb.Struct) ([]byte, error) {
	if st == nil {
		return nil, nil
	}
	b, err := protojson.Marshal(st)
	if err != nil {
		return nil, users.Invalid("user.attributes", err.Error())
	}
	return b, nil
}

func toProtosV2(us []*users.User) []*usersv2.User {
	out := make([]*usersv2.User, len(us))
	for i, u := range us {
		out[i] = toProtoV2(u)
	}
	return out
}

// fromProtoV2 returns the fields of a v2 user that callers may set, its
// name turned into a tenant and an id.
func fromProtoV2(u *usersv2.User) (*users.User, error) {
	if u == nil {
		return nil, nil
	}
	tenant, id, err := scopedOf(names.Users, "user.id", u.GetName())
	if err != nil {
		return nil, err
	}
	out, err := settableV2(u)
	if err != nil {
		return nil, err
	}
	out.Tenant, out.ID = tenant, id
	return out, nil
}

// importRowV2 is a v2 row of an import with only the fields a caller may
// set; see importRows.
func importRowV2(u *usersv2.User) *usersv2.User {
	return &usersv2.User{
		Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: u.GetState(), Labels: u.GetLabels(),
		ExternalId: u.GetExternalId(), GivenName: u.GetGivenName(), FamilyName: u.GetFamilyName(),
		PhoneNumber: u.GetPhoneNumber(), EmailVerified: u.GetEmailVerified(), PhoneVerified: u.GetPhoneVerified(),
		Locale: u.GetLocale(), TimeZone: u.GetTimeZone(), Attributes: u.GetAttributes(),
	}
}

// settableV2 returns the fields of a v2 user that callers may set, but
// its name: all of a row that importRowV2 made.
func settableV2(u *usersv2.User) (*users.User, error) {
	attrs, err := attributesJSON(u.GetAttributes())
	if err != nil {
		return nil, err
	}
	return &users.User{
		Email: u.GetEmail(), DisplayName: u.GetDisplayName(), State: users.State(u.GetState()), Labels: u.GetLabels(),
		Profile: users.Profile{
			ExternalID: u.GetExternalId(), GivenName: u.GetGivenName(), FamilyName: u.GetFamilyName(),
			PhoneNumber: u.GetPhoneNumber(), EmailVerified: u.GetEmailVerified(), PhoneVerified: u.GetPhoneVerified(),
			Locale: u.GetLocale(), TimeZone: u.GetTimeZone(), Attributes: attrs,
		},
	}, nil
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
	if op.Kind == users.OperationSchemaCheck {
		return schemaCheckToProtoV2(op)
	}
	pb := &usersv2.Operation{
		Name: names.Operations.InTenant(op.Tenant, op.ID),
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

// schemaCheckToProtoV2 returns the v2 form of a schema check: its
// schema_check_metadata, and its schema_check_response once it is done.
func schemaCheckToProtoV2(op *users.Operation) *usersv2.Operation {
	pb := &usersv2.Operation{
		Name: names.Operations.InTenant(op.Tenant, op.ID),
		Done: op.Done(),
		SchemaCheckMetadata: &usersv2.SchemaCheckMetadata{
			Checked:    int32(op.Imported),
			Violating:  int32(op.Failed),
			CreateTime: timestamppb.New(op.CreateTime),
			UpdateTime: timestamppb.New(op.UpdateTime),
		},
	}
	if pb.Done {
		vs := op.SchemaViolations()
		pb.SchemaCheckResponse = &usersv2.SchemaCheckResponse{Samples: make([]*usersv2.SchemaViolation, len(vs))}
		for i, v := range vs {
			pb.SchemaCheckResponse.Samples[i] = &usersv2.SchemaViolation{User: userName(op.Tenant, v.User), Field: v.Field, Description: v.Description}
		}
	}
	return pb
}

// eventToProtoV2 returns the v2 form of an event.
func eventToProtoV2(ev users.Event) *usersv2.UserEvent {
	pb := &usersv2.UserEvent{
		Name:         names.UserEvents.Name(ev.ID),
		Type:         string(ev.Type),
		Tenant:       tenantName(ev.Tenant),
		ChangedPaths: changedPaths(ev.Paths),
		CreateTime:   timestamppb.New(ev.Time),
		Cursor:       ev.Pos.Cursor(),
		Traceparent:  ev.TraceParent,
	}
	if ev.UserID != "" {
		pb.User = userName(ev.Tenant, ev.UserID)
	}
	if ev.User != nil {
		pb.Snapshot = toProtoV2(ev.User)
	}
	if ev.GroupID != "" {
		pb.Group = groupName(ev.Tenant, ev.GroupID)
	}
	if ev.Group != nil {
		pb.GroupSnapshot = groupToProtoV2(ev.Group)
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
		Name:                names.Webhooks.InTenant(w.Tenant, w.ID),
		AllTenants:          w.AllTenants,
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
