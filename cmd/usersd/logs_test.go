package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// accessLines returns the access lines with the given message, decoded.
func (s *testServer) accessLines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(s.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["message"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// TestAccessLogs: one line per request at the edge it arrived at, with the
// fields operators need, and no personal data or bodies at info level.
func TestAccessLogs(t *testing.T) {
	s := startServer(t)
	const email, name = "private.person@example.com", "Very Private Name"
	id := createUser(t, s, email, name).str("id")
	s.do(t, "GET", "/v1/users/"+id, "")
	s.do(t, "GET", "/v1/users/not-an-id", "")
	s.do(t, "POST", "/v1/users", `{"email":"`+email+`","displayName":"dup"}`) // 409
	s.do(t, "GET", "/no/such/route", "")
	ctx := context.Background()
	if _, err := s.Client.GetUser(ctx, &usersv1.GetUserRequest{Id: id}); err != nil {
		t.Fatal(err)
	}
	s.Client.ListUsers(ctx, &usersv1.ListUsersRequest{Filter: `email = "` + email + `" OR`}) // bad filter quoting the address

	// Lines are written after the response; give the last ones a moment.
	deadline := time.Now().Add(2 * time.Second)
	for len(s.accessLines(t, "http request")) < 5 || len(s.accessLines(t, "grpc request")) < 2 {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	httpLines := s.accessLines(t, "http request")
	want := []struct {
		route, rpc, code string
		status           float64
	}{
		{"/v1/users", "/users.v1.UserService/CreateUser", "OK", 201},
		{"/v1/users/{id}", "/users.v1.UserService/GetUser", "OK", 200},
		{"/v1/users/{id}", "/users.v1.UserService/GetUser", "InvalidArgument", 400},
		{"/v1/users", "/users.v1.UserService/CreateUser", "AlreadyExists", 409},
		{"unmatched", "", "", 404},
	}
	if len(httpLines) != len(want) {
		t.Fatalf("%d http access lines, want %d:\n%s", len(httpLines), len(want), s.logs)
	}
	for i, w := range want {
		l := httpLines[i]
		if l["route"] != w.route || l["status"] != w.status || (w.rpc != "" && (l["rpc"] != w.rpc || l["grpc_code"] != w.code)) {
			t.Errorf("http line %d = %v, want route %s status %v rpc %s code %s", i, l, w.route, w.status, w.rpc, w.code)
		}
		for _, f := range []string{"method", "duration_ms", "peer", "level", "time"} {
			if _, ok := l[f]; !ok {
				t.Errorf("http line %d lacks %q: %v", i, f, l)
			}
		}
	}
	grpcLines := s.accessLines(t, "grpc request")
	if len(grpcLines) != 2 {
		t.Fatalf("%d grpc access lines, want 2 (JSON calls must not log twice):\n%s", len(grpcLines), s.logs)
	}
	if grpcLines[0]["rpc"] != "/users.v1.UserService/GetUser" || grpcLines[0]["grpc_code"] != "OK" || grpcLines[0]["peer"] == nil {
		t.Errorf("grpc line = %v", grpcLines[0])
	}
	if grpcLines[1]["grpc_code"] != "InvalidArgument" {
		t.Errorf("grpc line = %v", grpcLines[1])
	}
	for _, secret := range []string{email, name, "private.person"} {
		if strings.Contains(s.logs.String(), secret) {
			t.Errorf("the log contains %q:\n%s", secret, s.logs)
		}
	}
}
