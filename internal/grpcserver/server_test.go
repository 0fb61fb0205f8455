package grpcserver_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/users"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newClient serves users.v1 on a fresh SQLite database (see serveUsers)
// and returns a client of it.
func newClient(t *testing.T) usersv1.UserServiceClient {
	t.Helper()
	return usersv1.NewUserServiceClient(serveUsers(t, func(s grpc.ServiceRegistrar, svc *users.Service) {
		usersv1.RegisterUserServiceServer(s, grpcserver.New(svc))
	}))
}

// withMD returns ctx carrying the outgoing metadata key/value pairs.
func withMD(ctx context.Context, kv ...string) context.Context {
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}

// badRequestFields returns the fields named by the BadRequest detail of err.
func badRequestFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// errorReason returns the reason of the ErrorInfo detail of err, or "".
func errorReason(t *testing.T, err error) string {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != grpcserver.ErrorDomain {
				t.Errorf("ErrorInfo domain = %q, want %q", info.GetDomain(), grpcserver.ErrorDomain)
			}
			return info.GetReason()
		}
	}
	return ""
}

// fieldMatches reports whether the BadRequest field got is want or an
// element or subfield of it: "user.labels" matches `user.labels["Bad Key"]`.
func fieldMatches(got, want string) bool {
	return got == want || strings.HasPrefix(got, want+"[") || strings.HasPrefix(got, want+".")
}

// checkErr fails the test unless err has the code want and, when field is
// not empty, a BadRequest detail naming field (see fieldMatches).
func checkErr(t *testing.T, call string, err error, want codes.Code, field string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s err = nil, want %v", call, want)
		return
	}
	if got := status.Code(err); got != want {
		t.Errorf("%s err = %v, want code %v", call, err, want)
	}
	if field == "" {
		return
	}
	fields := badRequestFields(err)
	if !slices.ContainsFunc(fields, func(f string) bool { return fieldMatches(f, field) }) {
		t.Errorf("%s BadRequest fields = %q, want one naming %q", call, fields, field)
	}
}

func ids(us []*usersv1.User) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.GetId()
	}
	return out
}

func reversed(s []string) []string {
	r := slices.Clone(s)
	slices.Reverse(r)
	return r
}

var ignoreVolatile = protocmp.IgnoreFields(&usersv1.User{}, "id", "create_time", "update_time", "etag")

func mustCreate(t *testing.T, c usersv1.UserServiceClient, u *usersv1.User) *usersv1.User {
	t.Helper()
	got, err := c.CreateUser(context.Background(), &usersv1.CreateUserRequest{User: u})
	if err != nil {
		t.Fatalf("CreateUser(%s) err = %v", u.GetEmail(), err)
	}
	return got
}

func mustDelete(t *testing.T, c usersv1.UserServiceClient, id string) *usersv1.User {
	t.Helper()
	got, err := c.DeleteUser(context.Background(), &usersv1.DeleteUserRequest{Id: id})
	if err != nil {
		t.Fatalf("DeleteUser(%s) err = %v", id, err)
	}
	return got
}

func user(email, name string) *usersv1.User {
	return &usersv1.User{Email: email, DisplayName: name}
}

func TestCreateUser(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	t.Run("ok", func(t *testing.T) {
		in := &usersv1.User{
			Email: "Ada@Example.com", DisplayName: "Ada Lovelace",
			State:  usersv1.User_STATE_SUSPENDED,
			Labels: map[string]string{"team": "core"},
			Id:     "0190a3c4-0000-7000-8000-000000000000", // ignored
		}
		got, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: in})
		if err != nil {
			t.Fatalf("CreateUser err = %v", err)
		}
		want := &usersv1.User{Email: "Ada@Example.com", DisplayName: "Ada Lovelace", State: usersv1.User_STATE_SUSPENDED, Labels: map[string]string{"team": "core"}}
		if diff := cmp.Diff(want, got, protocmp.Transform(), ignoreVolatile); diff != "" {
			t.Errorf("CreateUser (-want +got):\n%s", diff)
		}
		if _, err := uuid.Parse(got.GetId()); err != nil || got.GetId() == in.GetId() {
			t.Errorf("CreateUser id = %q, want a new UUID", got.GetId())
		}
		if got.GetCreateTime() == nil || !got.GetCreateTime().AsTime().Equal(got.GetUpdateTime().AsTime()) {
			t.Errorf("CreateUser create_time = %v, update_time = %v; want both set and equal", got.GetCreateTime(), got.GetUpdateTime())
		}
		if got.GetDeleteTime() != nil || got.GetEtag() == "" {
			t.Errorf("CreateUser delete_time = %v, etag = %q; want unset and set", got.GetDeleteTime(), got.GetEtag())
		}
	})

	t.Run("default state is active", func(t *testing.T) {
		got := mustCreate(t, c, user("plain@example.com", "Plain"))
		if got.GetState() != usersv1.User_STATE_ACTIVE {
			t.Errorf("CreateUser state = %v, want STATE_ACTIVE", got.GetState())
		}
	})

	invalid := []struct {
		name  string
		md    []string
		req   *usersv1.CreateUserRequest
		field string
	}{
		{name: "no user", req: &usersv1.CreateUserRequest{}, field: "user"},
		{name: "missing display_name", req: &usersv1.CreateUserRequest{User: &usersv1.User{Email: "x1@example.com"}}, field: "user.display_name"},
		{name: "blank display_name", req: &usersv1.CreateUserRequest{User: user("x2@example.com", "   ")}, field: "user.display_name"},
		{name: "missing email", req: &usersv1.CreateUserRequest{User: &usersv1.User{DisplayName: "X"}}, field: "user.email"},
		{name: "bad email", req: &usersv1.CreateUserRequest{User: user("not an email", "X")}, field: "user.email"},
		{name: "bad label key", req: &usersv1.CreateUserRequest{User: &usersv1.User{Email: "x3@example.com", DisplayName: "X", Labels: map[string]string{"Bad Key": "v"}}}, field: "user.labels"},
		{name: "state deleted", req: &usersv1.CreateUserRequest{User: &usersv1.User{Email: "x4@example.com", DisplayName: "X", State: usersv1.User_STATE_DELETED}}, field: "user.state"},
		{name: "undefined state", req: &usersv1.CreateUserRequest{User: &usersv1.User{Email: "x5@example.com", DisplayName: "X", State: 42}}, field: "user.state"},
		{name: "request_id with a space", req: &usersv1.CreateUserRequest{User: user("x6@example.com", "X"), RequestId: "a b"}, field: "request_id"},
		{name: "request_id too long", req: &usersv1.CreateUserRequest{User: user("x7@example.com", "X"), RequestId: strings.Repeat("r", 129)}, field: "request_id"},
		{name: "idempotency-key too long", md: []string{grpcserver.MDIdempotencyKey, strings.Repeat("r", 129)}, req: &usersv1.CreateUserRequest{User: user("x8@example.com", "X")}, field: "request_id"},
		// docs/api.md: the header, like the field, is 1 to 128 visible ASCII characters.
		{name: "idempotency-key with a space", md: []string{grpcserver.MDIdempotencyKey, "a b"}, req: &usersv1.CreateUserRequest{User: user("x9@example.com", "X")}, field: "request_id"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.CreateUser(withMD(ctx, tt.md...), tt.req)
			checkErr(t, "CreateUser", err, codes.InvalidArgument, tt.field)
		})
	}

	t.Run("duplicate email in other case", func(t *testing.T) {
		mustCreate(t, c, user("grace@example.com", "Grace"))
		_, err := c.CreateUser(ctx, &usersv1.CreateUserRequest{User: user("GRACE@Example.COM", "Grace 2")})
		checkErr(t, "CreateUser(duplicate)", err, codes.AlreadyExists, "")
	})

	// Each row sends a first request, then a second one; the second
	// either replays the first (same user) or fails.
	replays := []struct {
		name          string
		first, second *usersv1.CreateUserRequest
		firstMD       []string
		secondMD      []string
		wantCode      codes.Code // of the second call; OK means a replay
		wantField     string
		wantReason    string
	}{
		{
			name:   "request_id replay",
			first:  &usersv1.CreateUserRequest{User: user("r1@example.com", "R1"), RequestId: "req-1"},
			second: &usersv1.CreateUserRequest{User: user("r1@example.com", "R1"), RequestId: "req-1"},
		},
		{
			name:       "request_id reused for another request",
			first:      &usersv1.CreateUserRequest{User: user("r2@example.com", "R2"), RequestId: "req-2"},
			second:     &usersv1.CreateUserRequest{User: user("r2@example.com", "Someone else"), RequestId: "req-2"},
			wantCode:   codes.InvalidArgument,
			wantField:  "request_id",
			wantReason: users.ReasonRequestIDReused,
		},
		{
			name:     "idempotency-key replay",
			first:    &usersv1.CreateUserRequest{User: user("r3@example.com", "R3")},
			firstMD:  []string{grpcserver.MDIdempotencyKey, "req-3"},
			second:   &usersv1.CreateUserRequest{User: user("r3@example.com", "R3")},
			secondMD: []string{grpcserver.MDIdempotencyKey, "req-3"},
		},
		{
			name:     "idempotency-key replays a request_id",
			first:    &usersv1.CreateUserRequest{User: user("r4@example.com", "R4"), RequestId: "req-4"},
			second:   &usersv1.CreateUserRequest{User: user("r4@example.com", "R4")},
			secondMD: []string{grpcserver.MDIdempotencyKey, "req-4"},
		},
		{
			name:       "idempotency-key reused for another request",
			first:      &usersv1.CreateUserRequest{User: user("r5@example.com", "R5")},
			firstMD:    []string{grpcserver.MDIdempotencyKey, "req-5"},
			second:     &usersv1.CreateUserRequest{User: user("r5b@example.com", "R5")},
			secondMD:   []string{grpcserver.MDIdempotencyKey, "req-5"},
			wantCode:   codes.InvalidArgument,
			wantField:  "request_id",
			wantReason: users.ReasonRequestIDReused,
		},
		{
			name:     "request_id and idempotency-key equal",
			first:    &usersv1.CreateUserRequest{User: user("r6@example.com", "R6"), RequestId: "req-6"},
			firstMD:  []string{grpcserver.MDIdempotencyKey, "req-6"},
			second:   &usersv1.CreateUserRequest{User: user("r6@example.com", "R6"), RequestId: "req-6"},
			secondMD: []string{grpcserver.MDIdempotencyKey, "req-6"},
		},
		{
			name:      "request_id and idempotency-key differ",
			first:     &usersv1.CreateUserRequest{User: user("r7@example.com", "R7"), RequestId: "req-7"},
			second:    &usersv1.CreateUserRequest{User: user("r7@example.com", "R7"), RequestId: "req-7"},
			secondMD:  []string{grpcserver.MDIdempotencyKey, "req-7-other"},
			wantCode:  codes.InvalidArgument,
			wantField: "request_id",
		},
	}
	for _, tt := range replays {
		t.Run(tt.name, func(t *testing.T) {
			first, err := c.CreateUser(withMD(ctx, tt.firstMD...), tt.first)
			if err != nil {
				t.Fatalf("first CreateUser err = %v", err)
			}
			second, err := c.CreateUser(withMD(ctx, tt.secondMD...), tt.second)
			if tt.wantCode != codes.OK {
				checkErr(t, "second CreateUser", err, tt.wantCode, tt.wantField)
				if got := errorReason(t, err); got != tt.wantReason {
					t.Errorf("second CreateUser ErrorInfo reason = %q, want %q", got, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatalf("second CreateUser err = %v, want a replay", err)
			}
			if diff := cmp.Diff(first, second, protocmp.Transform()); diff != "" {
				t.Errorf("replay returned another user (-first +second):\n%s", diff)
			}
		})
	}

	t.Run("replay creates nothing", func(t *testing.T) {
		res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 1000, Filter: `email = "r1@example.com"`})
		if err != nil {
			t.Fatalf("ListUsers err = %v", err)
		}
		if len(res.GetUsers()) != 1 {
			t.Errorf("users with email r1@example.com = %d, want 1", len(res.GetUsers()))
		}
	})
}

func TestGetUser(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	created := mustCreate(t, c, &usersv1.User{Email: "ada@example.com", DisplayName: "Ada", Labels: map[string]string{"team": "core"}})

	tests := []struct {
		name     string
		id       string
		wantCode codes.Code
		field    string
	}{
		{name: "ok", id: created.GetId()},
		{name: "upper-case id", id: strings.ToUpper(created.GetId())},
		{name: "unknown", id: uuid.Must(uuid.NewV7()).String(), wantCode: codes.NotFound},
		{name: "not a uuid", id: "not-a-uuid", wantCode: codes.InvalidArgument, field: "id"},
		{name: "empty", id: "", wantCode: codes.InvalidArgument, field: "id"},
		{name: "uuid without hyphens", id: strings.ReplaceAll(created.GetId(), "-", ""), wantCode: codes.InvalidArgument, field: "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: tt.id})
			if tt.wantCode != codes.OK {
				checkErr(t, fmt.Sprintf("GetUser(%q)", tt.id), err, tt.wantCode, tt.field)
				return
			}
			if err != nil {
				t.Fatalf("GetUser(%q) err = %v", tt.id, err)
			}
			if diff := cmp.Diff(created, got, protocmp.Transform()); diff != "" {
				t.Errorf("GetUser(%q) (-want +got):\n%s", tt.id, diff)
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	// Create order differs from email order.
	emails := []string{"e@example.com", "c@example.com", "a@example.com", "d@example.com", "b@example.com"}
	var created []*usersv1.User
	for i, e := range emails {
		u := user(e, fmt.Sprintf("User %d", i))
		if i == 2 {
			u.State = usersv1.User_STATE_SUSPENDED
		}
		created = append(created, mustCreate(t, c, u))
	}
	createOrder := ids(created)
	byEmailDesc := slices.Clone(created)
	slices.SortFunc(byEmailDesc, func(a, b *usersv1.User) int { return strings.Compare(b.GetEmail(), a.GetEmail()) })

	ok := []struct {
		name string
		req  *usersv1.ListUsersRequest
		want []string
	}{
		{"default", &usersv1.ListUsersRequest{}, createOrder},
		{"page_size above the maximum", &usersv1.ListUsersRequest{PageSize: 2000}, createOrder},
		{"order_by email desc", &usersv1.ListUsersRequest{OrderBy: "email desc"}, ids(byEmailDesc)},
		{"order_by create_time desc", &usersv1.ListUsersRequest{OrderBy: "create_time desc"}, reversed(createOrder)},
		{"filter state", &usersv1.ListUsersRequest{Filter: `state = "SUSPENDED"`}, []string{created[2].GetId()}},
		{"filter email in other case", &usersv1.ListUsersRequest{Filter: `email = "D@EXAMPLE.COM"`}, []string{created[3].GetId()}},
	}
	for _, tt := range ok {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.ListUsers(ctx, tt.req)
			if err != nil {
				t.Fatalf("ListUsers(%v) err = %v", tt.req, err)
			}
			if diff := cmp.Diff(tt.want, ids(res.GetUsers())); diff != "" {
				t.Errorf("ListUsers(%v) ids (-want +got):\n%s", tt.req, diff)
			}
			if res.GetNextPageToken() != "" {
				t.Errorf("ListUsers(%v) next_page_token = %q, want none", tt.req, res.GetNextPageToken())
			}
		})
	}

	t.Run("paging", func(t *testing.T) {
		for _, orderBy := range []string{"", "email desc"} {
			want := createOrder
			if orderBy != "" {
				want = ids(byEmailDesc)
			}
			var got []string
			req := &usersv1.ListUsersRequest{PageSize: 2, OrderBy: orderBy}
			for pages := 0; ; pages++ {
				if pages > len(emails) {
					t.Fatalf("order_by %q: more than %d pages", orderBy, pages)
				}
				res, err := c.ListUsers(ctx, req)
				if err != nil {
					t.Fatalf("ListUsers(%v) err = %v", req, err)
				}
				if n := len(res.GetUsers()); n > 2 {
					t.Errorf("ListUsers(%v) returned %d users, want at most 2", req, n)
				}
				got = append(got, ids(res.GetUsers())...)
				if res.GetNextPageToken() == "" {
					break
				}
				req.PageToken = res.GetNextPageToken()
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("order_by %q: pages of 2 (-want +got):\n%s", orderBy, diff)
			}
		}
	})

	first, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 2})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("ListUsers(page_size 2) = %v, %v; want a next page token", first, err)
	}
	token := first.GetNextPageToken()
	tampered := []byte(token)
	if i := len(tampered) / 2; tampered[i] == 'A' {
		tampered[i] = 'B'
	} else {
		tampered[i] = 'A'
	}

	invalid := []struct {
		name       string
		req        *usersv1.ListUsersRequest
		field      string
		wantReason string
	}{
		{name: "negative page_size", req: &usersv1.ListUsersRequest{PageSize: -1}, field: "page_size"},
		{name: "bad filter", req: &usersv1.ListUsersRequest{Filter: `nickname = "x"`}, field: "filter"},
		{name: "filter syntax", req: &usersv1.ListUsersRequest{Filter: `state = "ACTIVE" OR state = "SUSPENDED"`}, field: "filter"},
		{name: "bad order_by", req: &usersv1.ListUsersRequest{OrderBy: "display_name"}, field: "order_by"},
		{name: "bad order_by direction", req: &usersv1.ListUsersRequest{OrderBy: "email sideways"}, field: "order_by"},
		{name: "tampered page_token", req: &usersv1.ListUsersRequest{PageSize: 2, PageToken: string(tampered)}, field: "page_token", wantReason: users.ReasonInvalidPageToken},
		{name: "garbage page_token", req: &usersv1.ListUsersRequest{PageSize: 2, PageToken: "not a token"}, field: "page_token", wantReason: users.ReasonInvalidPageToken},
		{name: "page_token with another filter", req: &usersv1.ListUsersRequest{PageSize: 2, PageToken: token, Filter: `state = "ACTIVE"`}, field: "page_token", wantReason: users.ReasonInvalidPageToken},
		{name: "page_token with another order", req: &usersv1.ListUsersRequest{PageSize: 2, PageToken: token, OrderBy: "email"}, field: "page_token", wantReason: users.ReasonInvalidPageToken},
		{name: "page_token with show_deleted", req: &usersv1.ListUsersRequest{PageSize: 2, PageToken: token, ShowDeleted: true}, field: "page_token", wantReason: users.ReasonInvalidPageToken},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ListUsers(ctx, tt.req)
			checkErr(t, fmt.Sprintf("ListUsers(%v)", tt.req), err, codes.InvalidArgument, tt.field)
			if got := errorReason(t, err); got != tt.wantReason {
				t.Errorf("ListUsers(%v) ErrorInfo reason = %q, want %q", tt.req, got, tt.wantReason)
			}
		})
	}

	t.Run("page_token with a different page_size", func(t *testing.T) {
		res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{PageSize: 10, PageToken: token})
		if err != nil {
			t.Fatalf("ListUsers err = %v", err)
		}
		if diff := cmp.Diff(createOrder[2:], ids(res.GetUsers())); diff != "" {
			t.Errorf("ListUsers after page 1 (-want +got):\n%s", diff)
		}
	})

	t.Run("show_deleted", func(t *testing.T) {
		gone := mustDelete(t, c, created[1].GetId())
		res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{})
		if err != nil {
			t.Fatalf("ListUsers err = %v", err)
		}
		want := slices.DeleteFunc(slices.Clone(createOrder), func(id string) bool { return id == gone.GetId() })
		if diff := cmp.Diff(want, ids(res.GetUsers())); diff != "" {
			t.Errorf("ListUsers without show_deleted (-want +got):\n%s", diff)
		}
		res, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{ShowDeleted: true})
		if err != nil {
			t.Fatalf("ListUsers(show_deleted) err = %v", err)
		}
		if diff := cmp.Diff(createOrder, ids(res.GetUsers())); diff != "" {
			t.Errorf("ListUsers with show_deleted (-want +got):\n%s", diff)
		}
		if got := res.GetUsers()[1]; got.GetState() != usersv1.User_STATE_DELETED {
			t.Errorf("deleted user in ListUsers has state %v, want STATE_DELETED", got.GetState())
		}
	})
}

func TestUpdateUser(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	mask := func(paths ...string) *fieldmaskpb.FieldMask { return &fieldmaskpb.FieldMask{Paths: paths} }

	t.Run("mask display_name", func(t *testing.T) {
		u := mustCreate(t, c, user("m1@example.com", "Before"))
		got, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User:       &usersv1.User{Id: u.GetId(), DisplayName: "After", Email: "ignored@example.com", State: usersv1.User_STATE_SUSPENDED},
			UpdateMask: mask("display_name"),
		})
		if err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
		want := user("m1@example.com", "After")
		want.State = usersv1.User_STATE_ACTIVE
		if diff := cmp.Diff(want, got, protocmp.Transform(), ignoreVolatile); diff != "" {
			t.Errorf("UpdateUser (-want +got):\n%s", diff)
		}
		if got.GetEtag() == u.GetEtag() {
			t.Errorf("UpdateUser etag = %q, unchanged", got.GetEtag())
		}
		if got.GetUpdateTime().AsTime().Before(u.GetUpdateTime().AsTime()) {
			t.Errorf("UpdateUser update_time = %v, before %v", got.GetUpdateTime().AsTime(), u.GetUpdateTime().AsTime())
		}
		if !got.GetCreateTime().AsTime().Equal(u.GetCreateTime().AsTime()) {
			t.Errorf("UpdateUser create_time = %v, want %v", got.GetCreateTime().AsTime(), u.GetCreateTime().AsTime())
		}
	})

	t.Run("empty mask updates the fields that are set", func(t *testing.T) {
		u := mustCreate(t, c, &usersv1.User{Email: "m2@example.com", DisplayName: "Before", Labels: map[string]string{"old": "1"}})
		got, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User: &usersv1.User{Id: u.GetId(), DisplayName: "After", Labels: map[string]string{"team": "core"}},
		})
		if err != nil {
			t.Fatalf("UpdateUser err = %v", err)
		}
		want := &usersv1.User{Email: "m2@example.com", DisplayName: "After", State: usersv1.User_STATE_ACTIVE, Labels: map[string]string{"team": "core"}}
		if diff := cmp.Diff(want, got, protocmp.Transform(), ignoreVolatile); diff != "" {
			t.Errorf("UpdateUser (-want +got):\n%s", diff)
		}
		stored, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: u.GetId()})
		if err != nil {
			t.Fatalf("GetUser err = %v", err)
		}
		if diff := cmp.Diff(got, stored, protocmp.Transform()); diff != "" {
			t.Errorf("GetUser after UpdateUser (-updated +stored):\n%s", diff)
		}
	})

	t.Run("right etag", func(t *testing.T) {
		u := mustCreate(t, c, user("m3@example.com", "Before"))
		got, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{
			User:       &usersv1.User{Id: u.GetId(), DisplayName: "After", Etag: u.GetEtag()},
			UpdateMask: mask("display_name"),
		})
		if err != nil {
			t.Fatalf("UpdateUser with the current etag err = %v", err)
		}
		if got.GetEtag() == u.GetEtag() || got.GetEtag() == "" {
			t.Errorf("UpdateUser etag = %q, want a new one (old %q)", got.GetEtag(), u.GetEtag())
		}
		// The same via If-Match, quoted as HTTP sends it.
		got2, err := c.UpdateUser(withMD(ctx, grpcserver.MDIfMatch, `"`+got.GetEtag()+`"`), &usersv1.UpdateUserRequest{
			User:       &usersv1.User{Id: u.GetId(), DisplayName: "Again"},
			UpdateMask: mask("display_name"),
		})
		if err != nil {
			t.Fatalf("UpdateUser with the current If-Match err = %v", err)
		}
		if got2.GetEtag() == got.GetEtag() {
			t.Errorf("UpdateUser etag = %q, unchanged", got2.GetEtag())
		}
	})

	stale := mustCreate(t, c, user("stale@example.com", "Stale"))
	staleEtag := stale.GetEtag()
	if _, err := c.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: stale.GetId(), DisplayName: "Changed"}}); err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	taken := mustCreate(t, c, user("taken@example.com", "Taken"))
	target := mustCreate(t, c, user("target@example.com", "Target"))
	deleted := mustDelete(t, c, mustCreate(t, c, user("deleted@example.com", "Deleted")).GetId())

	errs := []struct {
		name     string
		md       []string
		req      *usersv1.UpdateUserRequest
		wantCode codes.Code
		field    string
	}{
		{
			name:     "unknown mask path",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: target.GetId(), DisplayName: "X"}, UpdateMask: mask("nickname")},
			wantCode: codes.InvalidArgument, field: "update_mask",
		},
		{
			name:     "stale etag in user.etag",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: stale.GetId(), DisplayName: "X", Etag: staleEtag}, UpdateMask: mask("display_name")},
			wantCode: codes.Aborted,
		},
		{
			name:     "stale etag in if-match",
			md:       []string{grpcserver.MDIfMatch, staleEtag},
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: stale.GetId(), DisplayName: "X"}, UpdateMask: mask("display_name")},
			wantCode: codes.Aborted,
		},
		{
			name:     "user.etag and if-match differ",
			md:       []string{grpcserver.MDIfMatch, "0123456789abcdef"},
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: target.GetId(), DisplayName: "X", Etag: target.GetEtag()}, UpdateMask: mask("display_name")},
			wantCode: codes.InvalidArgument, field: "user.etag",
		},
		{
			name:     "email taken",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: target.GetId(), Email: "Taken@Example.com"}, UpdateMask: mask("email")},
			wantCode: codes.AlreadyExists,
		},
		{
			name:     "state deleted",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: target.GetId(), State: usersv1.User_STATE_DELETED}, UpdateMask: mask("state")},
			wantCode: codes.InvalidArgument, field: "user.state",
		},
		{
			name:     "bad email",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: target.GetId(), Email: "nope"}, UpdateMask: mask("email")},
			wantCode: codes.InvalidArgument, field: "user.email",
		},
		{
			name:     "masked email left empty",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: target.GetId()}, UpdateMask: mask("email")},
			wantCode: codes.InvalidArgument, field: "user.email",
		},
		{
			name:     "no id",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{DisplayName: "X"}},
			wantCode: codes.InvalidArgument, field: "user.id",
		},
		{
			name:     "no user",
			req:      &usersv1.UpdateUserRequest{},
			wantCode: codes.InvalidArgument, field: "user",
		},
		{
			name:     "unknown user",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: uuid.Must(uuid.NewV7()).String(), DisplayName: "X"}},
			wantCode: codes.NotFound,
		},
		{
			name:     "deleted user",
			req:      &usersv1.UpdateUserRequest{User: &usersv1.User{Id: deleted.GetId(), DisplayName: "X"}, UpdateMask: mask("display_name")},
			wantCode: codes.FailedPrecondition,
		},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.UpdateUser(withMD(ctx, tt.md...), tt.req)
			checkErr(t, "UpdateUser", err, tt.wantCode, tt.field)
		})
	}

	t.Run("failed updates change nothing", func(t *testing.T) {
		for _, u := range []*usersv1.User{target, taken} {
			got, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: u.GetId()})
			if err != nil {
				t.Fatalf("GetUser err = %v", err)
			}
			if diff := cmp.Diff(u, got, protocmp.Transform()); diff != "" {
				t.Errorf("user changed by failed updates (-before +after):\n%s", diff)
			}
		}
	})
}

func TestDeleteUser(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	u := mustCreate(t, c, user("del@example.com", "Del"))
	got, err := c.DeleteUser(ctx, &usersv1.DeleteUserRequest{Id: u.GetId(), Etag: u.GetEtag()})
	if err != nil {
		t.Fatalf("DeleteUser err = %v", err)
	}
	if got.GetState() != usersv1.User_STATE_DELETED {
		t.Errorf("DeleteUser state = %v, want STATE_DELETED", got.GetState())
	}
	if got.GetDeleteTime() == nil || !got.GetDeleteTime().AsTime().Equal(got.GetUpdateTime().AsTime()) {
		t.Errorf("DeleteUser delete_time = %v, want set and equal to update_time %v", got.GetDeleteTime(), got.GetUpdateTime())
	}
	if got.GetEtag() == u.GetEtag() {
		t.Errorf("DeleteUser etag = %q, unchanged", got.GetEtag())
	}
	stored, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: u.GetId()})
	if err != nil {
		t.Fatalf("GetUser of a deleted user err = %v", err)
	}
	if diff := cmp.Diff(got, stored, protocmp.Transform()); diff != "" {
		t.Errorf("GetUser after DeleteUser (-deleted +stored):\n%s", diff)
	}

	t.Run("hidden from list", func(t *testing.T) {
		res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{})
		if err != nil {
			t.Fatalf("ListUsers err = %v", err)
		}
		if slices.Contains(ids(res.GetUsers()), u.GetId()) {
			t.Errorf("ListUsers without show_deleted lists deleted user %s", u.GetId())
		}
		res, err = c.ListUsers(ctx, &usersv1.ListUsersRequest{ShowDeleted: true})
		if err != nil {
			t.Fatalf("ListUsers(show_deleted) err = %v", err)
		}
		if !slices.Contains(ids(res.GetUsers()), u.GetId()) {
			t.Errorf("ListUsers with show_deleted does not list deleted user %s", u.GetId())
		}
	})

	t.Run("frees the address", func(t *testing.T) {
		mustCreate(t, c, user("DEL@example.com", "New Del"))
	})

	active := mustCreate(t, c, user("active@example.com", "Active"))
	staleEtag := active.GetEtag()
	active, err = c.UpdateUser(ctx, &usersv1.UpdateUserRequest{User: &usersv1.User{Id: active.GetId(), DisplayName: "Active 2"}})
	if err != nil {
		t.Fatalf("UpdateUser err = %v", err)
	}
	errs := []struct {
		name     string
		md       []string
		req      *usersv1.DeleteUserRequest
		wantCode codes.Code
		field    string
	}{
		{name: "again", req: &usersv1.DeleteUserRequest{Id: u.GetId()}, wantCode: codes.FailedPrecondition},
		{name: "stale etag", req: &usersv1.DeleteUserRequest{Id: active.GetId(), Etag: staleEtag}, wantCode: codes.Aborted},
		{name: "stale if-match", md: []string{grpcserver.MDIfMatch, staleEtag}, req: &usersv1.DeleteUserRequest{Id: active.GetId()}, wantCode: codes.Aborted},
		{name: "etag and if-match differ", md: []string{grpcserver.MDIfMatch, staleEtag}, req: &usersv1.DeleteUserRequest{Id: active.GetId(), Etag: active.GetEtag()}, wantCode: codes.InvalidArgument, field: "etag"},
		{name: "unknown", req: &usersv1.DeleteUserRequest{Id: uuid.Must(uuid.NewV7()).String()}, wantCode: codes.NotFound},
		{name: "bad id", req: &usersv1.DeleteUserRequest{Id: "42"}, wantCode: codes.InvalidArgument, field: "id"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.DeleteUser(withMD(ctx, tt.md...), tt.req)
			checkErr(t, "DeleteUser", err, tt.wantCode, tt.field)
		})
	}
	if got, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: active.GetId()}); err != nil || got.GetState() != usersv1.User_STATE_ACTIVE {
		t.Errorf("after failed deletes GetUser = %v, %v; want still ACTIVE", got, err)
	}
}

func TestUndeleteUser(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()

	t.Run("ok", func(t *testing.T) {
		u := mustCreate(t, c, user("undel@example.com", "Undel"))
		deleted := mustDelete(t, c, u.GetId())
		got, err := c.UndeleteUser(ctx, &usersv1.UndeleteUserRequest{Id: u.GetId(), Etag: deleted.GetEtag()})
		if err != nil {
			t.Fatalf("UndeleteUser err = %v", err)
		}
		if got.GetState() != usersv1.User_STATE_ACTIVE || got.GetDeleteTime() != nil {
			t.Errorf("UndeleteUser state = %v, delete_time = %v; want STATE_ACTIVE and unset", got.GetState(), got.GetDeleteTime())
		}
		if got.GetEtag() == deleted.GetEtag() {
			t.Errorf("UndeleteUser etag = %q, unchanged", got.GetEtag())
		}
		res, err := c.ListUsers(ctx, &usersv1.ListUsersRequest{})
		if err != nil {
			t.Fatalf("ListUsers err = %v", err)
		}
		if !slices.Contains(ids(res.GetUsers()), u.GetId()) {
			t.Errorf("ListUsers does not list undeleted user %s", u.GetId())
		}
	})

	t.Run("suspended user comes back active", func(t *testing.T) {
		u := mustCreate(t, c, &usersv1.User{Email: "susp@example.com", DisplayName: "Susp", State: usersv1.User_STATE_SUSPENDED})
		mustDelete(t, c, u.GetId())
		got, err := c.UndeleteUser(ctx, &usersv1.UndeleteUserRequest{Id: u.GetId()})
		if err != nil || got.GetState() != usersv1.User_STATE_ACTIVE {
			t.Errorf("UndeleteUser = %v, %v; want STATE_ACTIVE", got, err)
		}
	})

	active := mustCreate(t, c, user("active@example.com", "Active"))
	reused := mustCreate(t, c, user("reused@example.com", "Old"))
	mustDelete(t, c, reused.GetId())
	mustCreate(t, c, user("Reused@Example.com", "New"))
	staleDeleted := mustCreate(t, c, user("stale@example.com", "Stale"))
	mustDelete(t, c, staleDeleted.GetId())

	errs := []struct {
		name     string
		req      *usersv1.UndeleteUserRequest
		wantCode codes.Code
		field    string
	}{
		{name: "active user", req: &usersv1.UndeleteUserRequest{Id: active.GetId()}, wantCode: codes.FailedPrecondition},
		{name: "address re-used", req: &usersv1.UndeleteUserRequest{Id: reused.GetId()}, wantCode: codes.AlreadyExists},
		{name: "stale etag", req: &usersv1.UndeleteUserRequest{Id: staleDeleted.GetId(), Etag: staleDeleted.GetEtag()}, wantCode: codes.Aborted},
		{name: "unknown", req: &usersv1.UndeleteUserRequest{Id: uuid.Must(uuid.NewV7()).String()}, wantCode: codes.NotFound},
		{name: "bad id", req: &usersv1.UndeleteUserRequest{Id: "nope"}, wantCode: codes.InvalidArgument, field: "id"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.UndeleteUser(ctx, tt.req)
			checkErr(t, "UndeleteUser", err, tt.wantCode, tt.field)
		})
	}
	if got, err := c.GetUser(ctx, &usersv1.GetUserRequest{Id: reused.GetId()}); err != nil || got.GetState() != usersv1.User_STATE_DELETED {
		t.Errorf("after a failed undelete GetUser = %v, %v; want still STATE_DELETED", got, err)
	}
}

func TestBatchGetUsers(t *testing.T) {
	c := newClient(t)
	ctx := context.Background()
	var us []*usersv1.User
	for i := range 3 {
		us = append(us, mustCreate(t, c, user(fmt.Sprintf("b%d@example.com", i), fmt.Sprintf("B%d", i))))
	}
	deleted := mustDelete(t, c, mustCreate(t, c, user("gone@example.com", "Gone")).GetId())

	t.Run("order preserved", func(t *testing.T) {
		req := []string{us[2].GetId(), us[0].GetId(), strings.ToUpper(us[2].GetId()), deleted.GetId(), us[1].GetId()}
		res, err := c.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: req})
		if err != nil {
			t.Fatalf("BatchGetUsers err = %v", err)
		}
		want := []*usersv1.User{us[2], us[0], us[2], deleted, us[1]}
		if diff := cmp.Diff(want, res.GetUsers(), protocmp.Transform()); diff != "" {
			t.Errorf("BatchGetUsers (-want +got):\n%s", diff)
		}
	})

	t.Run("none", func(t *testing.T) {
		res, err := c.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{})
		if err != nil || len(res.GetUsers()) != 0 {
			t.Errorf("BatchGetUsers() = %v, %v; want no users", res, err)
		}
	})

	tooMany := make([]string, users.MaxBatchGet+1)
	for i := range tooMany {
		tooMany[i] = us[i%len(us)].GetId()
	}
	errs := []struct {
		name     string
		ids      []string
		wantCode codes.Code
		field    string
	}{
		{name: "unknown id", ids: []string{us[0].GetId(), uuid.Must(uuid.NewV7()).String()}, wantCode: codes.NotFound},
		{name: "too many ids", ids: tooMany, wantCode: codes.InvalidArgument, field: "ids"},
		{name: "bad id", ids: []string{us[0].GetId(), "not-a-uuid", us[1].GetId()}, wantCode: codes.InvalidArgument, field: "ids[1]"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: tt.ids})
			checkErr(t, "BatchGetUsers", err, tt.wantCode, tt.field)
			if res != nil {
				t.Errorf("BatchGetUsers returned %d users with an error, want none", len(res.GetUsers()))
			}
		})
	}

	t.Run("maximum ids", func(t *testing.T) {
		res, err := c.BatchGetUsers(ctx, &usersv1.BatchGetUsersRequest{Ids: tooMany[:users.MaxBatchGet]})
		if err != nil {
			t.Fatalf("BatchGetUsers(%d ids) err = %v", users.MaxBatchGet, err)
		}
		if n := len(res.GetUsers()); n != users.MaxBatchGet {
			t.Errorf("BatchGetUsers(%d ids) returned %d users", users.MaxBatchGet, n)
		}
	})
}
