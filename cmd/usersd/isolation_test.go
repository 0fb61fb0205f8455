package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/auth/authtest"
	"github.com/usersd/usersd/internal/postgres/pgtest"
	"github.com/usersd/usersd/internal/users"
)

// The tenants of TestIsolation: the caller's, the victim's, and one that
// does not exist.
const (
	isoA       = "tenant-a"
	isoB       = "tenant-b"
	isoNowhere = "tenant-zz"
	// What only tenant B's data holds: no answer to A may contain it.
	isoSecretEmail = "b-secret@example.com"
	isoSecretName  = "Bob of B"
	isoSecretURL   = "http://127.0.0.1:9/b-secret-hook"
)

// TestIsolation runs every v2 RPC that names a tenant's resources with a
// token bound to tenant A (scope users.admin) against tenant B's resources,
// over HTTP and gRPC, on both stores. For each call it tries three targets:
// B's resource, an id that exists nowhere in B, and a tenant that does not
// exist. The three answers must be the same, once what the request itself
// says (the tenant, the id, the email it names) is blanked out; none may
// carry what only B's data holds; and B is the same afterwards as before.
// It also checks what no target-swapping covers: a page token of B's list
// used in A's, a filter naming B's email in A's list, B's event cursor in
// A's feed, and the platform's "tenants/-".
func TestIsolation(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testIsolation(t) })
	t.Run("postgres", func(t *testing.T) {
		testIsolation(t, "--database-url", pgtest.NewDatabase(t))
	})
}

// isoVariant is one target of a probe.
type isoVariant struct {
	name           string
	tenant, id     string
	email          string
	pageToken      string
	resourceExists bool
}

// isoProbe is one RPC, sent at a variant's target over HTTP and gRPC.
type isoProbe struct {
	rpc string
	// kind is the resource the variant's id names: "user", "operation",
	// "webhook", or "" when the probe names a tenant only.
	kind string
	// http is nil for a gRPC-only RPC.
	http func(v isoVariant) (method, path, body string)
	grpc func(ctx context.Context, c usersv2.UserServiceClient, tc usersv2.TenantServiceClient, v isoVariant) (proto.Message, error)
}

// isoFixture is what TestIsolation made in tenant B (and A).
type isoFixture struct {
	aUser                   string // a user of A
	bUser, bOp, bHook       string // B's resources' ids
	bCursor, bPageToken     string
	aOtherQueryToken        string // a page token of A's, for another query
	platform, tenantAHeader string // Authorization values
}

func testIsolation(t *testing.T, args ...string) {
	key := authtest.NewKey(t, jose.EdDSA)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, jwks, key)
	s := startServer(t, append([]string{"--auth", "jwt", "--auth-issuer", authtest.Issuer, "--auth-audience", authtest.Audience,
		"--auth-jwks", jwks, "--webhook-allow-private"}, args...)...)
	bearer := func(tenant string, scopes ...string) string {
		c := authtest.Claims{Subject: "svc-" + tenant, Scopes: scopes}
		if tenant != "" {
			c.Extra = map[string]any{"tenant": tenant}
		}
		return "Bearer " + key.Token(t, c)
	}
	f := isoFixture{platform: bearer("", "tenants.admin"), tenantAHeader: bearer(isoA, "users.admin")}
	bAdmin := bearer(isoB, "users.admin")
	as := func(token string) []string { return []string{"Authorization", token} }

	for _, id := range []string{isoA, isoB} {
		s.do(t, "POST", "/v2/tenants?tenantId="+id, `{"displayName":"`+id+`"}`, as(f.platform)...).wantStatus(t, http.StatusCreated)
	}
	// The same address in both tenants: each tenant has its own.
	shared := `{"email":"shared@example.com","displayName":"Shared"}`
	f.aUser = idOfName(s.do(t, "POST", "/v2/tenants/"+isoA+"/users", shared, as(f.tenantAHeader)...).wantCreated(t))
	s.do(t, "POST", "/v2/tenants/"+isoB+"/users", shared, as(bAdmin)...).wantCreated(t)
	f.bUser = idOfName(s.do(t, "POST", "/v2/tenants/"+isoB+"/users",
		`{"email":"`+isoSecretEmail+`","displayName":"`+isoSecretName+`"}`, as(bAdmin)...).wantCreated(t))
	s.do(t, "POST", "/v2/tenants/"+isoA+"/users", `{"email":"a2@example.com","displayName":"A2"}`, as(f.tenantAHeader)...).wantCreated(t)
	op := s.do(t, "POST", "/v2/tenants/"+isoB+"/users:import", `{"requestId":"b-import","users":[{"email":"b-imported@example.com","displayName":"`+isoSecretName+`"}]}`, as(bAdmin)...)
	op.wantStatus(t, http.StatusAccepted)
	f.bOp = idOfName(op.str("name"))
	hook := s.do(t, "POST", "/v2/tenants/"+isoB+"/webhooks", `{"url":"`+isoSecretURL+`"}`, as(bAdmin)...)
	hook.wantStatus(t, http.StatusCreated)
	f.bHook = idOfName(hook.str("name"))
	page := s.do(t, "GET", "/v2/tenants/"+isoB+"/users?pageSize=1", "", as(bAdmin)...)
	page.wantStatus(t, http.StatusOK)
	f.bPageToken = page.str("nextPageToken")
	page = s.do(t, "GET", "/v2/tenants/"+isoA+`/users?pageSize=1&filter=`+url.QueryEscape(`display_name != "x"`), "", as(f.tenantAHeader)...)
	page.wantStatus(t, http.StatusOK)
	f.aOtherQueryToken = page.str("nextPageToken")
	feed := s.do(t, "GET", "/v2/tenants/"+isoB+"/userEvents", "", as(bAdmin)...)
	feed.wantStatus(t, http.StatusOK)
	f.bCursor = feed.str("nextCursor")
	if f.bPageToken == "" || f.aOtherQueryToken == "" || f.bCursor == "" {
		t.Fatalf("fixture: page tokens %q, %q, cursor %q; want all three", f.bPageToken, f.aOtherQueryToken, f.bCursor)
	}
	// The import is done, and its events are in B's feed, before the
	// snapshot.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		r := s.do(t, "GET", "/v2/tenants/"+isoB+"/operations/"+f.bOp, "", as(f.platform)...)
		r.wantStatus(t, http.StatusOK)
		if r.Body["done"] == true {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's import not done after 20s: %s", r.Raw)
		}
	}
	before := isoSnapshot(t, s, f)

	c, tc := usersv2.NewUserServiceClient(s.conn), usersv2.NewTenantServiceClient(s.conn)
	ctxA := metadata.AppendToOutgoingContext(t.Context(), "authorization", f.tenantAHeader)
	// A's token works in A: the refusals below are about B.
	if _, err := c.GetUser(ctxA, &usersv2.GetUserRequest{Name: "tenants/" + isoA + "/users/" + f.aUser}); err != nil {
		t.Fatalf("A's token reading A's user: %v", err)
	}

	probes := isoProbes(f)
	tried := 0
	for _, p := range probes {
		variants := isoVariants(p.kind, f)
		var httpAnswers, grpcAnswers []string
		for _, v := range variants {
			if p.http != nil {
				method, path, body := p.http(v)
				r := s.do(t, method, path, body, as(f.tenantAHeader)...)
				httpAnswers = append(httpAnswers, fmt.Sprintf("%d %s", r.Status, isoBlank(r.Raw, v)))
				tried++
			}
			msg, err := p.grpc(ctxA, c, tc, v)
			grpcAnswers = append(grpcAnswers, isoBlank(grpcAnswer(msg, err), v))
			tried++
		}
		for i, v := range variants {
			if i > 0 && p.http != nil && httpAnswers[i] != httpAnswers[0] {
				t.Errorf("%s over HTTP: %s answered %s\nbut %s answered %s", p.rpc, variants[0].name, httpAnswers[0], v.name, httpAnswers[i])
			}
			if i > 0 && grpcAnswers[i] != grpcAnswers[0] {
				t.Errorf("%s over gRPC: %s answered %s\nbut %s answered %s", p.rpc, variants[0].name, grpcAnswers[0], v.name, grpcAnswers[i])
			}
		}
		for _, a := range slices.Concat(httpAnswers, grpcAnswers) {
			isoNoSecret(t, p.rpc, a)
			if strings.HasPrefix(a, "200 ") || strings.HasPrefix(a, "OK ") {
				// Only the filter probe succeeds: with nothing in it.
				if !strings.Contains(p.rpc, "filter") {
					t.Errorf("%s succeeded for tenant A against B: %s", p.rpc, a)
				}
			}
		}
	}

	// B's event cursor in A's own feed reads A's events only.
	for _, ev := range isoEvents(t, s.do(t, "GET", "/v2/tenants/"+isoA+"/userEvents?after="+url.QueryEscape(f.bCursor), "", as(f.tenantAHeader)...)) {
		if ev != "tenants/"+isoA {
			t.Errorf("A's feed after B's cursor has an event of %s", ev)
		}
	}
	res, err := c.ListUserEvents(ctxA, &usersv2.ListUserEventsRequest{Parent: "tenants/" + isoA, After: f.bCursor})
	if err != nil {
		t.Fatalf("gRPC A's feed after B's cursor: %v", err)
	}
	for _, ev := range res.GetEvents() {
		if ev.GetTenant() != "tenants/"+isoA {
			t.Errorf("gRPC: A's feed after B's cursor has an event of %s", ev.GetTenant())
		}
	}
	tried += 2

	after := isoSnapshot(t, s, f)
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("tenant B changed under tenant A's calls (-before +after):\n%s", diff)
	}
	t.Logf("isolation: %d RPC probes × their targets over HTTP and gRPC: %d calls by tenant A, all refused alike", len(probes), tried)
}

// isoVariants are the targets of a probe of kind: B's resource, an id
// that B does not have, a tenant that does not exist.
func isoVariants(kind string, f isoFixture) []isoVariant {
	missing := users.NewID()
	exists := map[string]string{"user": f.bUser, "operation": f.bOp, "webhook": f.bHook, "": missing}[kind]
	vs := []isoVariant{
		{name: "B's " + kind, tenant: isoB, id: exists, email: isoSecretEmail, pageToken: f.bPageToken, resourceExists: true},
	}
	if kind != "" {
		vs = append(vs, isoVariant{name: "an id B does not have", tenant: isoB, id: missing, email: "nobody-b@example.com", pageToken: f.aOtherQueryToken})
	}
	return append(vs, isoVariant{name: "a tenant that does not exist", tenant: isoNowhere, id: missing, email: "nobody@example.com", pageToken: f.aOtherQueryToken})
}

// isoProbes are the RPCs TestIsolation sends, each naming the variant's
// tenant and resource.
func isoProbes(f isoFixture) []isoProbe {
	user := func(v isoVariant) string { return "tenants/" + v.tenant + "/users/" + v.id }
	op := func(v isoVariant) string { return "tenants/" + v.tenant + "/operations/" + v.id }
	hook := func(v isoVariant) string { return "tenants/" + v.tenant + "/webhooks/" + v.id }
	parent := func(v isoVariant) string { return "tenants/" + v.tenant }
	ownUser := "tenants/" + isoA + "/users/" + f.aUser
	return []isoProbe{
		{"GetUser", "user", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + user(v), "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.GetUser(ctx, &usersv2.GetUserRequest{Name: user(v)})
			}},
		{"GetUser (default tenant's short name)", "user", func(v isoVariant) (string, string, string) { return "GET", "/v2/users/" + v.id, "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.GetUser(ctx, &usersv2.GetUserRequest{Name: "users/" + v.id})
			}},
		{"UpdateUser", "user", func(v isoVariant) (string, string, string) {
			return "PATCH", "/v2/" + user(v), `{"displayName":"Mallory"}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.UpdateUser(ctx, &usersv2.UpdateUserRequest{User: &usersv2.User{Name: user(v), DisplayName: "Mallory"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"display_name"}}})
		}},
		{"DeleteUser", "user", func(v isoVariant) (string, string, string) { return "DELETE", "/v2/" + user(v), "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.DeleteUser(ctx, &usersv2.DeleteUserRequest{Name: user(v)})
			}},
		{"UndeleteUser", "user", func(v isoVariant) (string, string, string) { return "POST", "/v2/" + user(v) + ":undelete", "{}" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.UndeleteUser(ctx, &usersv2.UndeleteUserRequest{Name: user(v)})
			}},
		{"BatchGetUsers", "user", func(v isoVariant) (string, string, string) {
			return "GET", "/v2/" + parent(v) + "/users:batchGet?names=" + url.QueryEscape(user(v)), ""
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Parent: parent(v), Names: []string{user(v)}})
		}},
		{"BatchGetUsers (names only)", "user", func(v isoVariant) (string, string, string) {
			return "GET", "/v2/users:batchGet?names=" + url.QueryEscape(user(v)), ""
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Names: []string{user(v)}})
		}},
		{"BatchGetUsers (A's and B's mixed)", "user", func(v isoVariant) (string, string, string) {
			return "GET", "/v2/tenants/" + isoA + "/users:batchGet?names=" + url.QueryEscape(ownUser) + "&names=" + url.QueryEscape(user(v)), ""
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.BatchGetUsers(ctx, &usersv2.BatchGetUsersRequest{Parent: "tenants/" + isoA, Names: []string{ownUser, user(v)}})
		}},
		{"ListUsers", "", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + parent(v) + "/users", "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: parent(v)})
			}},
		{"ListUsers (A's list, a filter naming B's email)", "user", func(v isoVariant) (string, string, string) {
			return "GET", "/v2/tenants/" + isoA + "/users?filter=" + url.QueryEscape(`email = "`+v.email+`"`), ""
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/" + isoA, Filter: `email = "` + v.email + `"`})
		}},
		{"ListUsers (A's list, B's page token)", "user", func(v isoVariant) (string, string, string) {
			return "GET", "/v2/tenants/" + isoA + "/users?pageSize=1&pageToken=" + url.QueryEscape(v.pageToken), ""
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.ListUsers(ctx, &usersv2.ListUsersRequest{Parent: "tenants/" + isoA, PageSize: 1, PageToken: v.pageToken})
		}},
		{"CreateUser", "", func(v isoVariant) (string, string, string) {
			return "POST", "/v2/" + parent(v) + "/users", `{"email":"new@example.com","displayName":"New"}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.CreateUser(ctx, &usersv2.CreateUserRequest{Parent: parent(v), User: &usersv2.User{Email: "new@example.com", DisplayName: "New"}})
		}},
		{"CreateUser (B's request id)", "", func(v isoVariant) (string, string, string) {
			return "POST", "/v2/" + parent(v) + "/users?requestId=b-import", `{"email":"new@example.com","displayName":"New"}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.CreateUser(ctx, &usersv2.CreateUserRequest{Parent: parent(v), RequestId: "b-import", User: &usersv2.User{Email: "new@example.com", DisplayName: "New"}})
		}},
		{"ImportUsers", "", func(v isoVariant) (string, string, string) {
			return "POST", "/v2/" + parent(v) + "/users:import", `{"requestId":"b-import","users":[{"email":"i@example.com","displayName":"I"}]}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.ImportUsers(ctx, &usersv2.ImportUsersRequest{Parent: parent(v), RequestId: "b-import", Users: []*usersv2.User{{Email: "i@example.com", DisplayName: "I"}}})
		}},
		{"GetOperation", "operation", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + op(v), "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.GetOperation(ctx, &usersv2.GetOperationRequest{Name: op(v)})
			}},
		{"GetOperation (default tenant's short name)", "operation", func(v isoVariant) (string, string, string) { return "GET", "/v2/operations/" + v.id, "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.GetOperation(ctx, &usersv2.GetOperationRequest{Name: "operations/" + v.id})
			}},
		{"ListUserEvents", "", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + parent(v) + "/userEvents", "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{Parent: parent(v)})
			}},
		{"ListUserEvents (every tenant)", "", func(isoVariant) (string, string, string) { return "GET", "/v2/tenants/-/userEvents", "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, _ isoVariant) (proto.Message, error) {
				return c.ListUserEvents(ctx, &usersv2.ListUserEventsRequest{Parent: "tenants/-"})
			}},
		{"WatchUserEvents", "", nil, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			st, err := c.WatchUserEvents(ctx, &usersv2.WatchUserEventsRequest{Parent: parent(v)})
			if err != nil {
				return nil, err
			}
			return st.Recv()
		}},
		{"CreateWebhook", "", func(v isoVariant) (string, string, string) {
			return "POST", "/v2/" + parent(v) + "/webhooks", `{"url":"http://127.0.0.1:9/a"}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.CreateWebhook(ctx, &usersv2.CreateWebhookRequest{Parent: parent(v), Webhook: &usersv2.Webhook{Url: "http://127.0.0.1:9/a"}})
		}},
		{"ListWebhooks", "", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + parent(v) + "/webhooks", "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.ListWebhooks(ctx, &usersv2.ListWebhooksRequest{Parent: parent(v)})
			}},
		{"ListWebhooks (every tenant)", "", func(isoVariant) (string, string, string) { return "GET", "/v2/tenants/-/webhooks", "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, _ isoVariant) (proto.Message, error) {
				return c.ListWebhooks(ctx, &usersv2.ListWebhooksRequest{Parent: "tenants/-"})
			}},
		{"GetWebhook", "webhook", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + hook(v), "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.GetWebhook(ctx, &usersv2.GetWebhookRequest{Name: hook(v)})
			}},
		{"UpdateWebhook", "webhook", func(v isoVariant) (string, string, string) {
			return "PATCH", "/v2/" + hook(v), `{"url":"http://127.0.0.1:9/mallory"}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: hook(v), Url: "http://127.0.0.1:9/mallory"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"url"}}})
		}},
		{"UpdateWebhook (rotate the secret)", "webhook", func(v isoVariant) (string, string, string) {
			return "PATCH", "/v2/" + hook(v) + "?updateMask=secret", `{}`
		}, func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return c.UpdateWebhook(ctx, &usersv2.UpdateWebhookRequest{Webhook: &usersv2.Webhook{Name: hook(v)}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"secret"}}})
		}},
		{"DeleteWebhook", "webhook", func(v isoVariant) (string, string, string) { return "DELETE", "/v2/" + hook(v), "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.DeleteWebhook(ctx, &usersv2.DeleteWebhookRequest{Name: hook(v)})
			}},
		{"ListWebhookDeliveries", "webhook", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + hook(v) + "/deliveries", "" },
			func(ctx context.Context, c usersv2.UserServiceClient, _ usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return c.ListWebhookDeliveries(ctx, &usersv2.ListWebhookDeliveriesRequest{Parent: hook(v)})
			}},
		{"GetTenant", "", func(v isoVariant) (string, string, string) { return "GET", "/v2/" + parent(v), "" },
			func(ctx context.Context, _ usersv2.UserServiceClient, tc usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return tc.GetTenant(ctx, &usersv2.GetTenantRequest{Name: parent(v)})
			}},
		{"UpdateTenant", "", func(v isoVariant) (string, string, string) {
			return "PATCH", "/v2/" + parent(v), `{"displayName":"Mallory"}`
		}, func(ctx context.Context, _ usersv2.UserServiceClient, tc usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
			return tc.UpdateTenant(ctx, &usersv2.UpdateTenantRequest{Tenant: &usersv2.Tenant{Name: parent(v), DisplayName: "Mallory"}})
		}},
		{"DeleteTenant", "", func(v isoVariant) (string, string, string) { return "DELETE", "/v2/" + parent(v), "" },
			func(ctx context.Context, _ usersv2.UserServiceClient, tc usersv2.TenantServiceClient, v isoVariant) (proto.Message, error) {
				return tc.DeleteTenant(ctx, &usersv2.DeleteTenantRequest{Name: parent(v)})
			}},
		{"ListTenants", "", func(isoVariant) (string, string, string) { return "GET", "/v2/tenants", "" },
			func(ctx context.Context, _ usersv2.UserServiceClient, tc usersv2.TenantServiceClient, _ isoVariant) (proto.Message, error) {
				return tc.ListTenants(ctx, &usersv2.ListTenantsRequest{})
			}},
	}
}

// grpcAnswer is a gRPC answer as text: "OK" and the message, or the
// status with its details.
func grpcAnswer(msg proto.Message, err error) string {
	if err != nil {
		b, _ := protojson.MarshalOptions{}.Marshal(status.Convert(err).Proto())
		return "ERR " + string(b)
	}
	b, _ := protojson.Marshal(msg)
	return "OK " + string(b)
}

// isoBlank blanks out of an answer what the request of v said itself.
func isoBlank(answer string, v isoVariant) string {
	r := strings.NewReplacer(v.tenant, "{tenant}", v.id, "{id}", v.email, "{email}", v.pageToken, "{token}")
	return r.Replace(answer)
}

// isoNoSecret fails the test when an answer to tenant A carries what only
// B's data holds.
func isoNoSecret(t *testing.T, rpc, answer string) {
	t.Helper()
	for _, secret := range []string{isoSecretEmail, isoSecretName, isoSecretURL, "b-imported@example.com"} {
		if strings.Contains(answer, secret) {
			t.Errorf("%s: an answer to tenant A holds B's %q: %s", rpc, secret, answer)
		}
	}
}

// isoEvents returns the tenant of each event of a ListUserEvents answer.
func isoEvents(t *testing.T, r response) []string {
	t.Helper()
	r.wantStatus(t, http.StatusOK)
	evs, _ := r.Body["events"].([]any)
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, fmt.Sprint(e.(map[string]any)["tenant"]))
	}
	return out
}

// isoSnapshot is tenant B as the platform reads it: its users (deleted
// too), subscriptions, import and events.
func isoSnapshot(t *testing.T, s *testServer, f isoFixture) []string {
	t.Helper()
	var out []string
	for _, path := range []string{
		"/v2/tenants/" + isoB,
		"/v2/tenants/" + isoB + "/users?showDeleted=true&pageSize=100",
		"/v2/tenants/" + isoB + "/webhooks",
		"/v2/tenants/" + isoB + "/operations/" + f.bOp,
		"/v2/tenants/" + isoB + "/userEvents?pageSize=1000",
	} {
		r := s.do(t, "GET", path, "", "Authorization", f.platform)
		r.wantStatus(t, http.StatusOK)
		if strings.HasSuffix(path, "/webhooks") {
			// The backlog's age moves with the clock.
			r.Raw = ageField.ReplaceAllString(r.Raw, `"age":"…"`)
		}
		out = append(out, path+" "+r.Raw)
	}
	return out
}

var ageField = regexp.MustCompile(`"age":"[^"]*"`)

// wantCreated checks a 201 and returns the created resource's name.
func (r response) wantCreated(t *testing.T) string {
	t.Helper()
	r.wantStatus(t, http.StatusCreated)
	return r.str("name")
}

// idOfName returns the last segment of a resource name.
func idOfName(name string) string { return name[strings.LastIndex(name, "/")+1:] }
