package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/postgres/pgtest"
)

func TestMigrateConcurrently(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.NewDatabase(t)
	pool := newPool(t, dsn)

	pending, err := postgres.MigrationsPending(ctx, pool)
	if err != nil || !pending {
		t.Fatalf("MigrationsPending(fresh database) = %v, %v; want true, nil", pending, err)
	}
	var versioned bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('goose_db_version') IS NOT NULL").Scan(&versioned); err != nil {
		t.Fatal(err)
	}
	if versioned {
		t.Error("MigrationsPending created goose's version table")
	}

	// Six replicas start at once, each with its own pool.
	const replicas = 6
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			p, err := pgxpool.New(ctx, dsn)
			if err != nil {
				errs[i] = err
				return
			}
			defer p.Close()
			errs[i] = postgres.Migrate(ctx, p, nil)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Migrate #%d err = %v", i, err)
		}
	}

	rows, err := pool.Query(ctx, "SELECT version_id, count(*) FROM goose_db_version GROUP BY version_id ORDER BY version_id")
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]int64{}
	for rows.Next() {
		var v, n int64
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		got[v] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Version 0 is goose's own row.
	if diff := cmp.Diff(map[int64]int64{0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1, 11: 1}, got); diff != "" {
		t.Errorf("goose_db_version rows per version (-want +got):\n%s", diff)
	}

	pending, err = postgres.MigrationsPending(ctx, pool)
	if err != nil || pending {
		t.Errorf("MigrationsPending(migrated) = %v, %v; want false, nil", pending, err)
	}
	if err := postgres.Migrate(ctx, pool, nil); err != nil {
		t.Errorf("Migrate again: %v", err)
	}
}

// TestSchema checks the parts of docs/storage.md that behaviour tests do not
// show: index definitions and the collation of email_key.
func TestSchema(t *testing.T) {
	ctx := context.Background()
	pool := newPool(t, pgtest.NewMigratedDatabase(t))

	rows, err := pool.Query(ctx, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			t.Fatal(err)
		}
		got[name] = def
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"events_pkey":                      "CREATE UNIQUE INDEX events_pkey ON public.events USING btree (id)",
		"events_time":                      "CREATE INDEX events_time ON public.events USING btree (\"time\")",
		"events_txid_seq":                  "CREATE UNIQUE INDEX events_txid_seq ON public.events USING btree (txid, seq)",
		"events_tenant_txid_seq":           "CREATE INDEX events_tenant_txid_seq ON public.events USING btree (tenant_id, txid, seq)",
		"goose_db_version_pkey":            "CREATE UNIQUE INDEX goose_db_version_pkey ON public.goose_db_version USING btree (id)",
		"group_members_pkey":               "CREATE UNIQUE INDEX group_members_pkey ON public.group_members USING btree (group_id, user_id)",
		"group_members_user_id_group_id":   "CREATE INDEX group_members_user_id_group_id ON public.group_members USING btree (user_id, group_id)",
		"groups_pkey":                      "CREATE UNIQUE INDEX groups_pkey ON public.groups USING btree (id)",
		"groups_tenant_external_id":        "CREATE UNIQUE INDEX groups_tenant_external_id ON public.groups USING btree (tenant_id, external_id) WHERE (external_id IS NOT NULL)",
		"groups_tenant_id":                 "CREATE INDEX groups_tenant_id ON public.groups USING btree (tenant_id, id)",
		"groups_tenant_name_key_id":        "CREATE INDEX groups_tenant_name_key_id ON public.groups USING btree (tenant_id, name_key, id)",
		"idempotency_keys_pkey":            "CREATE UNIQUE INDEX idempotency_keys_pkey ON public.idempotency_keys USING btree (tenant_id, request_id)",
		"idempotency_keys_user_id":         "CREATE INDEX idempotency_keys_user_id ON public.idempotency_keys USING btree (user_id)",
		"idempotency_keys_create_time":     "CREATE INDEX idempotency_keys_create_time ON public.idempotency_keys USING btree (create_time)",
		"operation_chunks_pkey":            "CREATE UNIQUE INDEX operation_chunks_pkey ON public.operation_chunks USING btree (operation_id, chunk)",
		"operations_pkey":                  "CREATE UNIQUE INDEX operations_pkey ON public.operations USING btree (id)",
		"operations_tenant_request_id_key": "CREATE UNIQUE INDEX operations_tenant_request_id_key ON public.operations USING btree (tenant_id, request_id)",
		"tenants_pkey":                     "CREATE UNIQUE INDEX tenants_pkey ON public.tenants USING btree (id)",
		"users_deleted_delete_time":        "CREATE INDEX users_deleted_delete_time ON public.users USING btree (delete_time) WHERE (state = 'DELETED'::text)",
		"users_tenant_create_time_id":      "CREATE INDEX users_tenant_create_time_id ON public.users USING btree (tenant_id, create_time, id)",
		"users_tenant_email_key_id":        "CREATE INDEX users_tenant_email_key_id ON public.users USING btree (tenant_id, email_key, id)",
		"users_tenant_email_key_live":      "CREATE UNIQUE INDEX users_tenant_email_key_live ON public.users USING btree (tenant_id, email_key) WHERE (state <> 'DELETED'::text)",
		"users_pkey":                       "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)",
		"users_attributes":                 "CREATE INDEX users_attributes ON public.users USING gin (attributes jsonb_path_ops)",
		"users_search_key_trgm":            "CREATE INDEX users_search_key_trgm ON public.users USING gin (search_key gin_trgm_ops)",
		"users_tenant_id_search":           "CREATE INDEX users_tenant_id_search ON public.users USING btree (tenant_id, id) INCLUDE (search_key, state)",
		"users_tenant_search_email":        "CREATE INDEX users_tenant_search_email ON public.users USING btree (tenant_id, search_email, id)",
		"users_tenant_search_display_name": "CREATE INDEX users_tenant_search_display_name ON public.users USING btree (tenant_id, search_display_name, id)",
		"users_tenant_search_given_name":   "CREATE INDEX users_tenant_search_given_name ON public.users USING btree (tenant_id, search_given_name, id)",
		"users_tenant_search_family_name":  "CREATE INDEX users_tenant_search_family_name ON public.users USING btree (tenant_id, search_family_name, id)",
		"users_tenant_search_external_id":  "CREATE INDEX users_tenant_search_external_id ON public.users USING btree (tenant_id, search_external_id, id)",
		"users_tenant_external_id_live":    "CREATE UNIQUE INDEX users_tenant_external_id_live ON public.users USING btree (tenant_id, external_id) WHERE ((state <> 'DELETED'::text) AND (external_id IS NOT NULL))",
		"webhooks_pkey":                    "CREATE UNIQUE INDEX webhooks_pkey ON public.webhooks USING btree (id)",
		"webhook_attempts_pkey":            "CREATE UNIQUE INDEX webhook_attempts_pkey ON public.webhook_attempts USING btree (id)",
		"webhook_attempts_webhook_id_time": "CREATE INDEX webhook_attempts_webhook_id_time ON public.webhook_attempts USING btree (webhook_id, \"time\" DESC)",
		"event_sinks_pkey":                 "CREATE UNIQUE INDEX event_sinks_pkey ON public.event_sinks USING btree (name)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}

	var collation string
	err = pool.QueryRow(ctx, `SELECT collation_name FROM information_schema.columns
		WHERE table_name = 'users' AND column_name = 'email_key'`).Scan(&collation)
	if err != nil || collation != "C" {
		t.Errorf("email_key collation = %q, %v; want C", collation, err)
	}
}
