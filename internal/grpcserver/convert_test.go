package grpcserver

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

// sameFields reports how a and b differ in the fields sameShape relies on:
// numbers, kinds, cardinality, and the shapes of message fields.
func sameFields(a, b protoreflect.MessageDescriptor, skip ...protoreflect.FullName) []string {
	var out []string
	fa, fb := a.Fields(), b.Fields()
	skipped := func(fs protoreflect.FieldDescriptors) int {
		n := 0
		for i := range fs.Len() {
			if slices.Contains(skip, fs.Get(i).FullName()) {
				n++
			}
		}
		return n
	}
	if na, nb := fa.Len()-skipped(fa), fb.Len()-skipped(fb); na != nb {
		out = append(out, fmt.Sprintf("%s has %d fields, %s %d", a.FullName(), na, b.FullName(), nb))
	}
	for i := range fa.Len() {
		x := fa.Get(i)
		if slices.Contains(skip, x.FullName()) {
			continue
		}
		y := fb.ByNumber(x.Number())
		switch {
		case y == nil:
			out = append(out, fmt.Sprintf("%s: no field %d in %s", x.FullName(), x.Number(), b.FullName()))
		case x.Kind() != y.Kind() || x.Cardinality() != y.Cardinality():
			out = append(out, fmt.Sprintf("%s is %v %v, %s %v %v", x.FullName(), x.Cardinality(), x.Kind(), y.FullName(), y.Cardinality(), y.Kind()))
		case x.Kind() == protoreflect.MessageKind && x.Message().FullName().Parent() != "google.protobuf":
			out = append(out, sameFields(x.Message(), y.Message())...)
		case x.Kind() == protoreflect.MessageKind && x.Message().FullName() != y.Message().FullName():
			out = append(out, fmt.Sprintf("%s is %s, %s %s", x.FullName(), x.Message().FullName(), y.FullName(), y.Message().FullName()))
		}
	}
	return out
}

// TestOperationShapesMatch guards operationToProto, which makes v1's
// Operation from v2's: the two must stay the same field for field, but
// for the fields of v2's schema checks, which v1 does not serve (and an
// import never sets).
func TestOperationShapesMatch(t *testing.T) {
	v1 := (&usersv1.Operation{}).ProtoReflect().Descriptor()
	v2 := (&usersv2.Operation{}).ProtoReflect().Descriptor()
	schemaChecks := []protoreflect.FullName{"users.v2.Operation.schema_check_metadata", "users.v2.Operation.schema_check_response"}
	for _, d := range append(sameFields(v1, v2, schemaChecks...), sameFields(v2, v1, schemaChecks...)...) {
		t.Error(d)
	}
}

// TestOperationToProto checks both versions' forms of an operation, done
// and not: the same JSON but for the name, which v2 gives in full with the
// tenant ("tenants/{tenant}/operations/{id}") and v1, which serves the
// default tenant only, as it always has ("operations/{id}").
func TestOperationToProto(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, op := range []*users.Operation{
		{Tenant: users.DefaultTenant, ID: "0193a4c6-0000-7000-8000-000000000001", Total: 3, Imported: 1, Chunks: 2, ChunksDone: 1, CreateTime: ts, UpdateTime: ts},
		{Tenant: users.DefaultTenant, ID: "0193a4c6-0000-7000-8000-000000000002", Total: 2, Imported: 1, Failed: 1, CreateTime: ts, UpdateTime: ts.Add(time.Second),
			Chunks: 1, ChunksDone: 1, Failures: []users.RowFailure{{Index: 1, Reason: "email: taken"}}},
	} {
		pb1, pb2 := operationToProto(op), operationToProtoV2(op)
		if got, want := pb2.GetName(), "tenants/default/operations/"+op.ID; got != want {
			t.Errorf("v2 name = %q, want %q", got, want)
		}
		if got, want := pb1.GetName(), "operations/"+op.ID; got != want {
			t.Errorf("v1 name = %q, want %q", got, want)
		}
		pb1.Name, pb2.Name = "", ""
		j1, err := protojson.Marshal(pb1)
		if err != nil {
			t.Fatal(err)
		}
		j2, err := protojson.Marshal(pb2)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(j2), string(j1)); diff != "" {
			t.Errorf("v1 and v2 operations differ but for the name (-v2 +v1):\n%s", diff)
		}
	}
	// A tenant's operation: v2 names it in that tenant.
	op := &users.Operation{Tenant: "acme", ID: "0193a4c6-0000-7000-8000-000000000003", Total: 1, CreateTime: ts, UpdateTime: ts}
	if got, want := operationToProtoV2(op).GetName(), "tenants/acme/operations/"+op.ID; got != want {
		t.Errorf("v2 name = %q, want %q", got, want)
	}
}

// TestAPIFields checks the one mapping of the domain's field paths to each
// API version's.
func TestAPIFields(t *testing.T) {
	domain := &users.InvalidError{Violations: []users.FieldViolation{
		{Field: "id", Description: "a"}, {Field: "user.id", Description: "b"}, {Field: "ids", Description: "c"},
		{Field: "ids[12]", Description: "d"}, {Field: "webhook.id", Description: "e"}, {Field: "webhook_id", Description: "f"},
		{Field: "user.email", Description: "g"}, {Field: "idsx", Description: "h"}, {Field: "page_size", Description: "i"},
	}, Reason: users.ReasonRequestIDReused}
	wrapped := fmt.Errorf("context: %w", domain)

	if got := apiFields("/users.v1.UserService/GetUser", wrapped); got != wrapped {
		t.Errorf("v1: apiFields = %v, want the error unchanged", got)
	}
	got := apiFields("/users.v2.UserService/GetUser", wrapped)
	var inv *users.InvalidError
	if !errors.As(got, &inv) {
		t.Fatalf("v2: apiFields = %T, want an *users.InvalidError", got)
	}
	var fields []string
	for _, v := range inv.Violations {
		fields = append(fields, v.Field)
	}
	want := []string{"name", "user.name", "names", "names[12]", "webhook.name", "parent", "user.email", "idsx", "page_size"}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Errorf("v2 fields (-want +got):\n%s", diff)
	}
	if inv.Reason != users.ReasonRequestIDReused {
		t.Errorf("v2 reason = %q, want %q", inv.Reason, users.ReasonRequestIDReused)
	}
	if domain.Violations[0].Field != "id" {
		t.Errorf("apiFields changed the domain's error: %v", domain)
	}
	other := errors.New("boom")
	if got := apiFields("/users.v2.UserService/GetUser", other); got != other {
		t.Errorf("v2: apiFields(other) = %v, want it unchanged", got)
	}
}
