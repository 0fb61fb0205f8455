package userstest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/attrschema"
	"github.com/usersd/usersd/internal/users"
)

// Schema checks: the operations that a tenant's new attributes schema
// starts (users.TenantStore), recorded by users.ImportStore's
// RecordSchemaCheck, and run by users.Service.RunSchemaCheck. The store
// tests are registered in TestImportStore, the service's in Run.

// EnqueueSchemaCheck records a schema check's job, or records nothing and
// returns the error set by Fail.
func (j *Jobs) EnqueueSchemaCheck(c users.SchemaCheck) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	j.checks = append(j.checks, c)
	return nil
}

// SchemaChecks returns the schema checks enqueued so far, in order.
func (j *Jobs) SchemaChecks() []users.SchemaCheck {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.checks)
}

// checkSchema and otherSchema are attributes schemas: the first requires an
// integer "level" from 1 to 10; the second a string "team".
const (
	checkSchema = `{"type":"object","required":["level"],"properties":{"level":{"type":"integer","minimum":1,"maximum":10}}}`
	otherSchema = `{"type":"object","required":["team"],"properties":{"team":{"type":"string"}}}`
)

// withSchemaCheck returns a change of a tenant, for UpdateTenant, that
// sets its schema and starts a check of it with a new id, as
// users.Service.UpdateTenant does, at the time.
func withSchemaCheck(schema string, at time.Time) func(*users.Tenant) error {
	return func(tn *users.Tenant) error {
		tn.Settings.AttributesSchema, tn.SchemaCheck, tn.UpdateTime = schema, uuid.Must(uuid.NewV7()).String(), at
		return nil
	}
}

// wantCheckStarted checks that the tenant's check is enqueued as the last
// job, with the tenant's schema, and that its operation is stored, not
// done.
func wantCheckStarted(t *testing.T, s ImportStore, jobs *Jobs, tn *users.Tenant) {
	t.Helper()
	checks := jobs.SchemaChecks()
	if len(checks) == 0 {
		t.Fatalf("tenant %s with schema check %s: no check enqueued", tn.ID, tn.SchemaCheck)
	}
	want := users.SchemaCheck{Tenant: tn.ID, OperationID: tn.SchemaCheck, Schema: tn.Settings.AttributesSchema, CreateTime: tn.UpdateTime}
	if diff := cmp.Diff(want, checks[len(checks)-1]); diff != "" {
		t.Errorf("enqueued check (-want +got):\n%s", diff)
	}
	op, err := s.GetOperation(context.Background(), tn.ID, tn.SchemaCheck)
	if err != nil {
		t.Fatalf("GetOperation(%s) of the check err = %v", tn.SchemaCheck, err)
	}
	wantOp := &users.Operation{
		Kind: users.OperationSchemaCheck, Tenant: tn.ID, ID: tn.SchemaCheck,
		Chunks: 1, CreateTime: tn.UpdateTime, UpdateTime: tn.UpdateTime,
	}
	if diff := cmp.Diff(wantOp, op); diff != "" {
		t.Errorf("GetOperation of a check not run (-want +got):\n%s", diff)
	}
	got, err := s.GetTenant(context.Background(), tn.ID)
	if err != nil {
		t.Fatalf("GetTenant(%s) err = %v", tn.ID, err)
	}
	if got.SchemaCheck != tn.SchemaCheck {
		t.Errorf("GetTenant(%s).SchemaCheck = %q, want %q", tn.ID, got.SchemaCheck, tn.SchemaCheck)
	}
}

// testSchemaCheckStart shows that a tenant stored with a new SchemaCheck,
// created or updated, starts that check (its operation and its job), and
// that one stored with the same, or none, starts nothing.
func testSchemaCheckStart(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	plain := createTenant(t, s, tenantA, 0)
	if plain.SchemaCheck != "" || len(jobs.SchemaChecks()) != 0 {
		t.Fatalf("a tenant created without a check: SchemaCheck %q, %d checks enqueued", plain.SchemaCheck, len(jobs.SchemaChecks()))
	}

	tn := NewTenant(1)
	tn.ID = tenantB
	tn.Settings.AttributesSchema, tn.SchemaCheck = checkSchema, uuid.Must(uuid.NewV7()).String()
	created, err := s.CreateTenant(ctx, tn)
	if err != nil {
		t.Fatalf("CreateTenant with a check err = %v", err)
	}
	if created.SchemaCheck != tn.SchemaCheck {
		t.Errorf("CreateTenant returned SchemaCheck %q, want %q", created.SchemaCheck, tn.SchemaCheck)
	}
	wantCheckStarted(t, s, jobs, created)

	// Another change keeps the check, and starts none.
	kept, err := s.UpdateTenant(ctx, tenantB, func(tn *users.Tenant) error {
		tn.DisplayName = "Renamed"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateTenant(display name) err = %v", err)
	}
	if kept.SchemaCheck != created.SchemaCheck || len(jobs.SchemaChecks()) != 1 {
		t.Errorf("an update that keeps the check: SchemaCheck %q (want %q), %d checks enqueued (want 1)", kept.SchemaCheck, created.SchemaCheck, len(jobs.SchemaChecks()))
	}

	// A new check: the first one stays, as it was.
	updated, err := s.UpdateTenant(ctx, tenantB, withSchemaCheck(otherSchema, base.Add(time.Hour)))
	if err != nil {
		t.Fatalf("UpdateTenant(new check) err = %v", err)
	}
	if len(jobs.SchemaChecks()) != 2 {
		t.Fatalf("%d checks enqueued, want 2", len(jobs.SchemaChecks()))
	}
	wantCheckStarted(t, s, jobs, updated)
	if first := jobs.SchemaChecks()[0]; first.Schema != checkSchema || first.OperationID != created.SchemaCheck {
		t.Errorf("the first check became %+v", first)
	}
	if _, err := s.GetOperation(ctx, tenantB, created.SchemaCheck); err != nil {
		t.Errorf("GetOperation of the first check err = %v", err)
	}
	// A check is the tenant's: another tenant does not see it.
	if _, err := s.GetOperation(ctx, tenantA, updated.SchemaCheck); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation of tenant %s's check in %s err = %v, want ErrNotFound", tenantB, tenantA, err)
	}
}

// testSchemaCheckEnqueueFails shows that a check whose job cannot be
// enqueued fails the tenant's change, which then stores nothing.
func testSchemaCheckEnqueueFails(t *testing.T, s ImportStore, jobs *Jobs) {
	ctx := context.Background()
	before := createTenant(t, s, tenantA, 0)
	boom := errors.New("queue down")
	jobs.Fail(boom)
	defer jobs.Fail(nil)

	change := withSchemaCheck(checkSchema, base.Add(time.Hour))
	var id string
	_, err := s.UpdateTenant(ctx, tenantA, func(tn *users.Tenant) error {
		err := change(tn)
		id = tn.SchemaCheck
		return err
	})
	if !errors.Is(err, boom) {
		t.Fatalf("UpdateTenant with a failing enqueue err = %v, want %v", err, boom)
	}
	after, err := s.GetTenant(ctx, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the tenant changed though its check was not enqueued (-before +after):\n%s", diff)
	}
	if _, err := s.GetOperation(ctx, tenantA, id); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation of the check not enqueued err = %v, want ErrNotFound", err)
	}

	tn := NewTenant(2)
	tn.ID = tenantB
	tn.Settings.AttributesSchema, tn.SchemaCheck = checkSchema, uuid.Must(uuid.NewV7()).String()
	if _, err := s.CreateTenant(ctx, tn); !errors.Is(err, boom) {
		t.Fatalf("CreateTenant with a failing enqueue err = %v, want %v", err, boom)
	}
	if _, err := s.GetTenant(ctx, tenantB); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetTenant of a tenant whose check was not enqueued err = %v, want ErrNotFound", err)
	}
	if n := len(jobs.SchemaChecks()); n != 0 {
		t.Errorf("%d checks recorded, want 0", n)
	}
}

// testSchemaCheckRecord shows that RecordSchemaCheck records a check's
// outcome once, as GetOperation then reads it, and only a schema check's.
func testSchemaCheckRecord(t *testing.T, s ImportStore) {
	ctx := context.Background()
	createTenant(t, s, tenantA, 0)
	tn, err := s.UpdateTenant(ctx, tenantA, withSchemaCheck(checkSchema, base.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	samples := []users.RowFailure{
		{Index: 0, Reason: "0194d0a0-0000-7000-8000-000000000001: attributes/level: maximum: got 11, want 10"},
		{Index: 2, Reason: "0194d0a0-0000-7000-8000-000000000003: attributes: missing property 'level'"},
	}
	start := users.Now()
	if err := s.RecordSchemaCheck(ctx, tn.SchemaCheck, 3, 2, samples); err != nil {
		t.Fatalf("RecordSchemaCheck err = %v", err)
	}
	// A second run records nothing: the first record stands.
	if err := s.RecordSchemaCheck(ctx, tn.SchemaCheck, 5, 0, nil); err != nil {
		t.Fatalf("RecordSchemaCheck again err = %v", err)
	}
	op, err := s.GetOperation(ctx, tenantA, tn.SchemaCheck)
	if err != nil {
		t.Fatal(err)
	}
	if op.UpdateTime.Before(start.Add(-time.Second)) {
		t.Errorf("UpdateTime %v, want the time it was recorded (about %v)", op.UpdateTime, start)
	}
	want := &users.Operation{
		Kind: users.OperationSchemaCheck, Tenant: tenantA, ID: tn.SchemaCheck,
		Chunks: 1, ChunksDone: 1, Imported: 3, Failed: 2, Failures: samples,
		CreateTime: tn.UpdateTime, UpdateTime: op.UpdateTime,
	}
	if diff := cmp.Diff(want, op); diff != "" {
		t.Errorf("GetOperation of a recorded check (-want +got):\n%s", diff)
	}
	if !op.Done() {
		t.Error("a recorded check is not done")
	}

	// No such check: an unknown id, or an import's.
	imp, chunks := importIn(tenantA, "schema-check-import", 1)
	if _, err := s.CreateImport(ctx, imp, users.IdempotencyKey{RequestID: imp.RequestID, Fingerprint: []byte("fp")}, chunks); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{uuid.Must(uuid.NewV7()).String(), imp.ID, "not-a-uuid"} {
		if err := s.RecordSchemaCheck(ctx, id, 1, 0, nil); !errors.Is(err, users.ErrNotFound) {
			t.Errorf("RecordSchemaCheck(%s) err = %v, want ErrNotFound", id, err)
		}
	}
	got, err := s.GetOperation(ctx, tenantA, imp.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != users.OperationImport || got.RequestID != imp.RequestID || got.ChunksDone != 0 {
		t.Errorf("the import after RecordSchemaCheck of its id: kind %v, request id %q, %d chunks done; want an import not begun", got.Kind, got.RequestID, got.ChunksDone)
	}
}

// settingsOf is the attrschema.SettingsReader of a service that checks
// schemas only as RunSchemaCheck and UpdateTenant do: with the schema
// given, not the tenant's cached settings.
type settingsOf struct{}

func (settingsOf) Settings(context.Context, string) (users.TenantSettings, error) {
	return users.TenantSettings{}, nil
}

func (settingsOf) Forget(string) {}

// testSchemaCheckService drives the schema checks through users.Service:
// an update that sets a new schema starts a check, which counts the users
// that are not deleted and break it, changes none, runs twice to the same
// outcome, and checks the schema it was started for, whatever the tenant
// has since.
func testSchemaCheckService(t *testing.T, s users.Store, jobs *Jobs) {
	ctx := context.Background()
	svc := users.NewService(s, users.Config{AttributeSchemas: attrschema.NewTenants(settingsOf{}, 0)})
	createTenant(t, s, tenantA, 0)
	attrs := []string{`{"level":3}`, `{"level":11}`, ``, `{"level":5,"team":"core"}`, `{"level":99}`}
	var us []*users.User
	for i, a := range attrs {
		u := userIn(tenantA, i)
		if a != "" {
			u.Attributes = []byte(a)
		}
		us = append(us, create(t, s, u))
	}
	// The last user is deleted: it is not checked.
	if _, err := s.UpdateUser(ctx, tenantA, us[4].ID, softDelete); err != nil {
		t.Fatal(err)
	}
	before := tenantUsers(t, s, tenantA)

	setSchema := func(schema string) *users.Tenant {
		t.Helper()
		tn, err := svc.UpdateTenant(ctx, tenantA, users.TenantRequest{
			Settings: users.TenantSettings{AttributesSchema: schema}, Paths: []string{"settings.attributes_schema"},
		})
		if err != nil {
			t.Fatalf("UpdateTenant(schema) err = %v", err)
		}
		return tn
	}
	first := setSchema(checkSchema)
	if first.SchemaCheck == "" {
		t.Fatal("UpdateTenant with a new schema: no SchemaCheck")
	}
	// The same schema, written otherwise: no new check.
	same := setSchema(strings.ReplaceAll(checkSchema, ",", ", "))
	if same.SchemaCheck != first.SchemaCheck {
		t.Errorf("setting the same schema started check %s", same.SchemaCheck)
	}
	second := setSchema(otherSchema)
	checks := jobs.SchemaChecks()
	if len(checks) != 2 || checks[0].OperationID != first.SchemaCheck || checks[1].OperationID != second.SchemaCheck {
		t.Fatalf("checks enqueued %+v, want %s then %s", checks, first.SchemaCheck, second.SchemaCheck)
	}

	// The later check first; then the earlier, twice: each checks its own
	// schema.
	for _, c := range []users.SchemaCheck{checks[1], checks[0], checks[0]} {
		if err := svc.RunSchemaCheck(ctx, c); err != nil {
			t.Fatalf("RunSchemaCheck(%s) err = %v", c.OperationID, err)
		}
	}
	wantViolations := func(id string, violating int, want []users.SchemaViolation) {
		t.Helper()
		op, err := svc.GetOperation(ctx, tenantA, id)
		if err != nil {
			t.Fatalf("GetOperation(%s) err = %v", id, err)
		}
		if !op.Done() || op.Kind != users.OperationSchemaCheck || op.Imported != 4 || op.Failed != violating {
			t.Errorf("check %s: done %v, kind %v, checked %d, violating %d; want done, a schema check, 4 checked, %d violating",
				id, op.Done(), op.Kind, op.Imported, op.Failed, violating)
		}
		if diff := cmp.Diff(want, op.SchemaViolations()); diff != "" {
			t.Errorf("check %s: violations (-want +got):\n%s", id, diff)
		}
	}
	wantViolations(first.SchemaCheck, 2, []users.SchemaViolation{
		{Index: 1, User: us[1].ID, Field: "attributes/level", Description: "maximum: got 11, want 10"},
		{Index: 2, User: us[2].ID, Field: "attributes", Description: "missing property 'level'"},
	})
	wantViolations(second.SchemaCheck, 3, []users.SchemaViolation{
		{Index: 0, User: us[0].ID, Field: "attributes", Description: "missing property 'team'"},
		{Index: 1, User: us[1].ID, Field: "attributes", Description: "missing property 'team'"},
		{Index: 2, User: us[2].ID, Field: "attributes", Description: "missing property 'team'"},
	})
	if diff := cmp.Diff(before, tenantUsers(t, s, tenantA)); diff != "" {
		t.Errorf("the checks changed users (-before +after):\n%s", diff)
	}
}

// tenantUsers returns every user of the tenant, deleted ones too.
func tenantUsers(t *testing.T, s users.UserStore, tenant string) []*users.User {
	t.Helper()
	us, err := s.ListUsers(context.Background(), users.ListQuery{Tenant: tenant, ShowDeleted: true, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return us
}
