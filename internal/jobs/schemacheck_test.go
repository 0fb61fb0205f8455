package jobs_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/attrschema"
	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/tenantrate"
	"github.com/usersd/usersd/internal/testkit"
	"github.com/usersd/usersd/internal/users"
)

// TestSchemaCheckJob: a tenant's new schema enqueues a
// check_attributes_schema job in the transaction that sets it, carrying
// the schema; the workers run it to a done operation that counts the users
// that break that schema. Two checks enqueued before either runs each
// check their own schema, though the tenant has the second by then.
func TestSchemaCheckJob(t *testing.T) {
	forEachDatabase(t, testSchemaCheckJob, testSchemaCheckJob)
}

func testSchemaCheckJob[TTx any](t *testing.T, h *harness[TTx]) {
	ctx := t.Context()
	q := h.newQueue(t, fast(nil))
	store := h.store(q)
	settings := tenantrate.New(store, 0, 0)
	svc := users.NewService(store, users.Config{TenantGate: settings, AttributeSchemas: attrschema.NewTenants(settings, 0)})
	for i, a := range []string{`{"level":3}`, `{"level":11}`, `{"team":"core"}`} {
		u := &users.User{Email: fmt.Sprintf("u%d@example.com", i), DisplayName: "U", Profile: users.Profile{Attributes: []byte(a)}}
		if _, err := svc.Create(ctx, users.CreateRequest{User: u}); err != nil {
			t.Fatal(err)
		}
	}
	const (
		levels = `{"type":"object","required":["level"],"properties":{"level":{"type":"integer","maximum":10}}}`
		teams  = `{"type":"object","required":["team"]}`
	)
	var ids []string
	for _, schema := range []string{levels, teams} {
		tn, err := svc.UpdateTenant(ctx, users.DefaultTenant, users.TenantRequest{
			Settings: users.TenantSettings{AttributesSchema: schema}, Paths: []string{"settings.attributes_schema"},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, tn.SchemaCheck)
	}
	rows, err := jobs.List(ctx, q, "check_attributes_schema")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d check_attributes_schema jobs, want 2", len(rows))
	}
	for i, row := range rows {
		var args jobs.CheckSchemaArgs
		if err := json.Unmarshal(row.EncodedArgs, &args); err != nil {
			t.Fatal(err)
		}
		if args.OperationID != ids[i] || args.Tenant != users.DefaultTenant || args.Schema != []string{levels, teams}[i] || row.Queue != jobs.QueueImport {
			t.Errorf("job %d: %+v in queue %s; want check %s of schema %d in %s", i, args, row.Queue, ids[i], i, jobs.QueueImport)
		}
	}

	start(t, q, svc, jobs.Deps{})
	for i, want := range []int{2, 2} { // levels: 11, and none; teams: the two without a team
		var op *users.Operation
		testkit.Eventually(t, 20*time.Second, "the schema check is not done", func() bool {
			op, err = svc.GetOperation(ctx, users.DefaultTenant, ids[i])
			return err == nil && op.Done()
		})
		if op.Kind != users.OperationSchemaCheck || op.Imported != 3 || op.Failed != want || len(op.Failures) != want {
			t.Errorf("check %d: kind %v, %d checked, %d violating, %d samples; want a schema check, 3, %d, %d", i, op.Kind, op.Imported, op.Failed, len(op.Failures), want, want)
		}
	}
}
