package main

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/testkit"
)

// TestStoreUnavailable: a database that refuses writes (here, turned
// read-only, as a demoted primary is) makes writes 503 with Retry-After over
// HTTP and UNAVAILABLE over gRPC, never 500; the access line names the
// cause at warn level, and usersd_store_errors_total counts it.
func TestStoreUnavailable(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := startServer(t, "--database-url", dsn)
	ctx := t.Context()
	createUser(t, s, "before@example.com", "Before").wantStatus(t, http.StatusCreated)

	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	db := admin.Config().Database
	for _, q := range []string{
		"ALTER DATABASE " + pgx.Identifier{db}.Sanitize() + " SET default_transaction_read_only = on",
		// End usersd's connections: the new ones take the setting.
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}

	// Each write is 503: the first ones find a connection the server
	// ended (a write is not sent again: its outcome is unknown), the next
	// ones a read-only database.
	readOnly := func() bool { return strings.Contains(s.logs.String(), "unavailable (read_only)") }
	for i := 0; i < 10 && !readOnly(); i++ {
		got := s.do(t, "POST", "/v1/users", `{"email":"after@example.com","displayName":"After"}`)
		if got.Status != http.StatusServiceUnavailable {
			t.Fatalf("POST /v1/users on a read-only database: status %d, want 503: %s", got.Status, got.Raw)
		}
		if ra := got.Header.Get("Retry-After"); ra != "1" {
			t.Errorf("Retry-After = %q, want 1", ra)
		}
		if code, _ := got.Body["code"].(float64); codes.Code(code) != codes.Unavailable {
			t.Errorf("body code %v, want %d (UNAVAILABLE): %s", got.Body["code"], codes.Unavailable, got.Raw)
		}
		if strings.Contains(got.Raw, "SQLSTATE") || strings.Contains(got.Raw, "read-only") {
			t.Errorf("the answer carries the database's words: %s", got.Raw)
		}
	}
	_, err = s.Client.CreateUser(ctx, &usersv1.CreateUserRequest{User: &usersv1.User{Email: "grpc@example.com", DisplayName: "G"}})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC CreateUser on a read-only database: %v, want UNAVAILABLE", err)
	}
	if r := s.do(t, "GET", "/v1/users?pageSize=10", ""); r.Status != http.StatusOK {
		t.Errorf("GET /v1/users on a read-only database: %d, want 200: %s", r.Status, r.Raw)
	}

	var warned bool
	for _, l := range s.accessLines(t, "http request") {
		if l["status"] == float64(503) && l["level"] == "warn" && strings.Contains(l["error"].(string), "unavailable (read_only)") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warn-level access line with status 503 names the cause read_only:\n%s", s.logs)
	}
	metrics := testkit.ScrapeURL(t, "http://"+s.Admin+"/metrics", "")
	if !strings.Contains(metrics, `usersd_store_errors_total{cause="read_only",kind="unavailable"} `) {
		t.Errorf("/metrics has no usersd_store_errors_total for read_only")
	}
}
