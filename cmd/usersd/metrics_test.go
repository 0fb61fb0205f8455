package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/testkit"
)

// TestMetricsEndToEnd scrapes a live server after HTTP and gRPC calls.
func TestMetricsEndToEnd(t *testing.T) {
	runOnStores(t, func(t *testing.T, s *testServer) {
		id := createUser(t, s, "metrics@example.com", "M").str("id")
		s.do(t, "GET", "/v1/users/"+id, "")
		s.do(t, "GET", "/v1/users/"+id+"x", "")
		if _, err := s.Client.GetUser(context.Background(), &usersv1.GetUserRequest{Id: id}); err != nil {
			t.Fatal(err)
		}
		text := testkit.ScrapeURL(t, "http://"+s.Admin+"/metrics", "")
		for _, want := range []string{
			`grpc_server_handled_total{grpc_code="OK",grpc_method="GetUser",grpc_service="users.v1.UserService",grpc_type="unary"} 2`,
			`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="GetUser",grpc_service="users.v1.UserService",grpc_type="unary"} 1`,
			`usersd_http_request_duration_seconds_count{method="GET",route="/v1/users/{id}",status="200"} 1`,
			`usersd_http_request_duration_seconds_count{method="POST",route="/v1/users",status="201"} 1`,
			`usersd_http_requests_in_flight 0`,
			`usersd_requests_rejected_total{transport="http"} 0`,
			`usersd_build_info{`,
			`go_goroutines `,
			`process_resident_memory_bytes `,
			`grpc_server_handling_seconds_bucket{`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
		if strings.Contains(t.Name(), "postgres") && !strings.Contains(text, "usersd_db_pool_max_connections ") {
			t.Error("/metrics lacks the Postgres pool stats")
		}
		if strings.Contains(text, id) {
			t.Error("/metrics contains a user id: a raw path leaked into a label")
		}

		path, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("promtool is not installed; .ci/run installs it")
			}
			t.Skip("promtool is not installed (Debian package prometheus); skipping promtool check metrics")
		}
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out.String())
		}
	})
}
