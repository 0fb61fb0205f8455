package grpcserver

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

// TestSchemaCheckToProtoV2: a schema check is v2's Operation with
// schema_check_metadata, and schema_check_response once done, whose
// samples name the users; an import's fields stay unset. Its tenant names
// it in attributes_schema_check.
func TestSchemaCheckToProtoV2(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const user = "0193a4c6-0000-7000-8000-0000000000aa"
	op := &users.Operation{
		Kind: users.OperationSchemaCheck, Tenant: "acme", ID: "0193a4c6-0000-7000-8000-000000000001",
		Chunks: 1, CreateTime: ts, UpdateTime: ts,
	}
	want := &usersv2.Operation{
		Name: "tenants/acme/operations/" + op.ID,
		SchemaCheckMetadata: &usersv2.SchemaCheckMetadata{
			CreateTime: timestamppb.New(ts), UpdateTime: timestamppb.New(ts),
		},
	}
	if diff := cmp.Diff(want, operationToProtoV2(op), protocmp.Transform()); diff != "" {
		t.Errorf("a check not done (-want +got):\n%s", diff)
	}

	op.ChunksDone, op.Imported, op.Failed, op.UpdateTime = 1, 3, 1, ts.Add(time.Second)
	op.Failures = []users.RowFailure{{Index: 1, Reason: user + ": attributes/level: maximum: got 11, want 10"}}
	want.Done = true
	want.SchemaCheckMetadata.Checked, want.SchemaCheckMetadata.Violating = 3, 1
	want.SchemaCheckMetadata.UpdateTime = timestamppb.New(ts.Add(time.Second))
	want.SchemaCheckResponse = &usersv2.SchemaCheckResponse{Samples: []*usersv2.SchemaViolation{
		{User: "tenants/acme/users/" + user, Field: "attributes/level", Description: "maximum: got 11, want 10"},
	}}
	if diff := cmp.Diff(want, operationToProtoV2(op), protocmp.Transform()); diff != "" {
		t.Errorf("a check done (-want +got):\n%s", diff)
	}

	tn := &users.Tenant{ID: "acme", State: users.StateActive, SchemaCheck: op.ID}
	if got := tenantToProtoV2(tn).GetAttributesSchemaCheck(); got != want.Name {
		t.Errorf("attributes_schema_check = %q, want %q", got, want.Name)
	}
	tn.SchemaCheck = ""
	if got := tenantToProtoV2(tn).GetAttributesSchemaCheck(); got != "" {
		t.Errorf("attributes_schema_check of a tenant without a check = %q, want empty", got)
	}
}
