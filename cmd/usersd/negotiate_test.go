package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

const (
	mediaV1 = "application/vnd.usersd.v1+json"
	mediaV2 = "application/vnd.usersd.v2+json"
)

// TestHTTPNegotiation runs the Accept outcomes of docs/api.md against the
// real server: unversioned paths serve the version the Accept header
// chooses, named by Content-Type, with Vary: Accept.
func TestHTTPNegotiation(t *testing.T) {
	s := startServer(t)

	// A v2 create on the unversioned path, with a vendor-typed body.
	c := s.do(t, "POST", "/users", `{"email":"neg@example.com","displayName":"Neg"}`,
		"Accept", mediaV2, "Content-Type", mediaV2)
	c.wantStatus(t, http.StatusCreated)
	name := c.str("name")
	id, ok := strings.CutPrefix(name, "tenants/default/users/")
	if !ok {
		t.Fatalf("v2 create gave name %q, want tenants/default/users/{id}; body %s", name, c.Raw)
	}
	if got, want := c.Header.Get("Location"), "/v2/tenants/default/users/"+id; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got, want := c.Header.Get("Content-Type"), mediaV2; got != want {
		t.Errorf("create Content-Type = %q, want %q", got, want)
	}
	if got, want := c.Header.Get("ETag"), `"`+c.str("etag")+`"`; got != want {
		t.Errorf("create ETag = %q, want %q", got, want)
	}
	if got := s.do(t, "GET", c.Header.Get("Location"), ""); got.Status != http.StatusOK || got.str("name") != name {
		t.Errorf("GET Location = %d %s, want the user", got.Status, got.Raw)
	}

	tests := []struct {
		name, accept string
		status       int
		contentType  string
		key          string // the field users have in that version
	}{
		{"no Accept: v1", "", 200, mediaV1, "id"},
		{"*/*: v1", "*/*", 200, mediaV1, "id"},
		{"application/json: v1", "application/json", 200, mediaV1, "id"},
		{"v1", mediaV1, 200, mediaV1, "id"},
		{"v2", mediaV2, 200, mediaV2, "name"},
		{"q-values choose v2", mediaV1 + ";q=0.5, " + mediaV2 + ";q=0.9", 200, mediaV2, "name"},
		{"v2 named beats */*", "*/*, " + mediaV2, 200, mediaV2, "name"},
		{"q-values choose v1", mediaV1 + ", " + mediaV2 + ";q=0.9", 200, mediaV1, "id"},
		{"unsupported version", "application/vnd.usersd.v3+json", 406, "application/json", ""},
		{"text/html", "text/html", 406, "application/json", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, "GET", "/users", "", "Accept", tc.accept)
			r.wantStatus(t, tc.status)
			if got := r.Header.Get("Content-Type"); got != tc.contentType {
				t.Errorf("Content-Type = %q, want %q", got, tc.contentType)
			}
			if got := r.Header.Values("Vary"); len(got) != 1 || got[0] != "Accept" {
				t.Errorf("Vary = %q, want Accept", got)
			}
			if tc.status == http.StatusNotAcceptable {
				if !strings.Contains(r.str("message"), mediaV1+", "+mediaV2+", application/json") || r.reason() != "NOT_ACCEPTABLE" {
					t.Errorf("406 body = %s, want the supported media types and reason NOT_ACCEPTABLE", r.Raw)
				}
				return
			}
			list, _ := r.Body["users"].([]any)
			if len(list) != 1 {
				t.Fatalf("users = %s, want the one user", r.Raw)
			}
			if u, _ := list[0].(map[string]any); u[tc.key] == nil {
				t.Errorf("user has no %q: %s", tc.key, r.Raw)
			}
		})
	}

	t.Run("errors are typed too", func(t *testing.T) {
		r := s.do(t, "GET", "/users/not-a-uuid", "", "Accept", mediaV2)
		r.wantStatus(t, http.StatusBadRequest, "name")
		if got := r.Header.Get("Content-Type"); got != mediaV2 {
			t.Errorf("Content-Type = %q, want %q", got, mediaV2)
		}
	})
	t.Run("the path wins over Accept", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/users/"+id, "", "Accept", mediaV2)
		r.wantStatus(t, http.StatusOK)
		if r.str("id") != id || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Vary") != "" {
			t.Errorf("GET /v1/users/{id} with Accept v2: Content-Type %q, Vary %q, body %s; want v1 as application/json, no Vary",
				r.Header.Get("Content-Type"), r.Header.Get("Vary"), r.Raw)
		}
	})
	t.Run("no sunset without --v1-sunset", func(t *testing.T) {
		r := s.do(t, "GET", "/v1/users", "")
		for _, k := range []string{"Deprecation", "Sunset", "Link"} {
			if v := r.Header.Values(k); len(v) > 0 {
				t.Errorf("%s = %q, want none", k, v)
			}
		}
		var md metadata.MD
		if _, err := s.Client.ListUsers(context.Background(), &usersv1.ListUsersRequest{}, grpc.Header(&md)); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"deprecation", "sunset", "link"} {
			if v := md.Get(k); len(v) > 0 {
				t.Errorf("gRPC metadata %s = %q, want none", k, v)
			}
		}
	})
}

func TestV1Sunset(t *testing.T) {
	s := startServer(t, "--v1-sunset", "2027-06-30")
	want := map[string]string{
		"Deprecation": "@1795478400", // 2026-11-24, the v2 release
		"Sunset":      "Wed, 30 Jun 2027 00:00:00 GMT",
		"Link": `<https://github.com/usersd/usersd/blob/main/docs/api.md#migrating-from-v1-to-v2>; rel="deprecation", ` +
			`<https://github.com/usersd/usersd/blob/main/docs/api.md#migrating-from-v1-to-v2>; rel="sunset"`,
	}

	for _, tc := range []struct {
		name, method, path, accept string
		announced                  bool
	}{
		{"v1 path", "GET", "/v1/users", "", true},
		{"v1 create", "POST", "/v1/users", "", true},
		{"v1 error", "GET", "/v1/users/not-a-uuid", "", true},
		{"v1 negotiated by default", "GET", "/users", "", true},
		{"v1 negotiated", "GET", "/users", mediaV1, true},
		{"v2 path", "GET", "/v2/users", "", false},
		{"v2 negotiated", "GET", "/users", mediaV2, false},
	} {
		t.Run("HTTP "+tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "POST" {
				body = `{"email":"sunset@example.com","displayName":"Sunset"}`
			}
			r := s.do(t, tc.method, tc.path, body, "Accept", tc.accept)
			for k, v := range want {
				got := r.Header.Values(k)
				switch {
				case tc.announced && (len(got) != 1 || got[0] != v):
					t.Errorf("%s = %q, want %q", k, got, v)
				case !tc.announced && len(got) > 0:
					t.Errorf("%s = %q, want none", k, got)
				}
				if got := r.Header.Values("Grpc-Metadata-" + k); len(got) > 0 {
					t.Errorf("Grpc-Metadata-%s = %q, want none", k, got)
				}
			}
		})
	}

	conn, err := grpc.NewClient(s.GRPC, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, tc := range []struct {
		name      string
		call      func(context.Context, ...grpc.CallOption) error
		wantErr   bool
		announced bool
	}{
		{"v1", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := usersv1.NewUserServiceClient(conn).ListUsers(ctx, &usersv1.ListUsersRequest{}, o...)
			return err
		}, false, true},
		{"v1 error", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := usersv1.NewUserServiceClient(conn).GetUser(ctx, &usersv1.GetUserRequest{Id: "not-a-uuid"}, o...)
			return err
		}, true, true},
		{"v2", func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := usersv2.NewUserServiceClient(conn).ListUsers(ctx, &usersv2.ListUsersRequest{}, o...)
			return err
		}, false, false},
	} {
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			var md metadata.MD
			if err := tc.call(context.Background(), grpc.Header(&md)); (err != nil) != tc.wantErr {
				t.Fatalf("call err = %v, want error: %v", err, tc.wantErr)
			}
			for k, v := range want {
				got := md.Get(k)
				switch {
				case tc.announced && (len(got) != 1 || got[0] != v):
					t.Errorf("metadata %s = %q, want %q", strings.ToLower(k), got, v)
				case !tc.announced && len(got) > 0:
					t.Errorf("metadata %s = %q, want none", strings.ToLower(k), got)
				}
			}
		})
	}
}

func TestV1SunsetFlag(t *testing.T) {
	for _, tc := range []struct {
		name, flag, env string
		want            time.Time
		wantErr         bool
	}{
		{"unset", "", "", time.Time{}, false},
		{"date", "2027-06-30", "", time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), false},
		{"date-time", "2027-06-30T12:00:00+02:00", "", time.Date(2027, 6, 30, 10, 0, 0, 0, time.UTC), false},
		{"environment", "", "2027-07-01", time.Date(2027, 7, 1, 0, 0, 0, 0, time.UTC), false},
		{"flag over environment", "2027-06-30", "2027-07-01", time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC), false},
		{"not a date", "next summer", "", time.Time{}, true},
		{"before v1 was deprecated", "2026-01-01", "", time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg config
			var args []string
			if tc.flag != "" {
				args = []string{"--v1-sunset", tc.flag}
			}
			getenv := func(k string) string {
				if k == "USERSD_V1_SUNSET" {
					return tc.env
				}
				return ""
			}
			err := parseConfig(flagSet("serve", &cfg, true, io.Discard), args, getenv)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseConfig(--v1-sunset %q, env %q) err = %v, want error: %v", tc.flag, tc.env, err, tc.wantErr)
			}
			if !tc.wantErr && !cfg.V1Sunset.Equal(tc.want) {
				t.Errorf("V1Sunset = %v, want %v", cfg.V1Sunset, tc.want)
			}
		})
	}
}
