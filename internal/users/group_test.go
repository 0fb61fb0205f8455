package users_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

func TestParseGroupOrderBy(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    users.GroupOrder
		wantErr string // part of the violation's description
	}{
		{in: "", want: users.GroupOrder{}},
		{in: "  ", want: users.GroupOrder{}},
		{in: "create_time", want: users.GroupOrder{}},
		{in: "createTime asc", want: users.GroupOrder{}},
		{in: "create_time DESC", want: users.GroupOrder{Desc: true}},
		{in: "display_name", want: users.GroupOrder{ByName: true}},
		{in: " displayName  Asc ", want: users.GroupOrder{ByName: true}},
		{in: "display_name desc", want: users.GroupOrder{ByName: true, Desc: true}},
		{in: "name", wantErr: "want create_time or display_name"},
		{in: "external_id", wantErr: "want create_time or display_name"},
		{in: "member_count desc", wantErr: "want create_time or display_name"},
		{in: "DISPLAY_NAME", wantErr: "want create_time or display_name"},
		{in: "display_name down", wantErr: "neither asc nor desc"},
		{in: "display_name asc,", wantErr: "neither asc nor desc"},
		{in: "display_name asc, create_time", wantErr: "one field and an optional direction"},
		{in: "display_name asc id", wantErr: "one field and an optional direction"},
		{in: "display_name,create_time", wantErr: "want create_time or display_name"},
	} {
		got, err := users.ParseGroupOrderBy(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseGroupOrderBy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
			continue
		}
		var inv *users.InvalidError
		if !errors.As(err, &inv) || len(inv.Violations) != 1 || inv.Violations[0].Field != "order_by" ||
			!strings.Contains(inv.Violations[0].Description, tt.wantErr) {
			t.Errorf("ParseGroupOrderBy(%q) err = %v, want an InvalidError on order_by saying %q", tt.in, err, tt.wantErr)
		}
	}
	for _, o := range []users.GroupOrder{{}, {Desc: true}, {ByName: true}, {ByName: true, Desc: true}} {
		if got, err := users.ParseGroupOrderBy(o.String()); err != nil || got != o {
			t.Errorf("ParseGroupOrderBy(%q) = %+v, %v; want %+v", o.String(), got, err, o)
		}
	}
}

// groupPagesOf lists every page of req, in pages of size, through the
// service, and returns the groups' names.
func groupPagesOf(t *testing.T, svc *users.Service, req users.GroupListRequest, size int) []string {
	t.Helper()
	req.PageSize = size
	var out []string
	for range 100 {
		res, err := svc.ListGroups(context.Background(), req)
		if err != nil {
			t.Fatalf("ListGroups(%+v) err = %v", req, err)
		}
		for _, g := range res.Groups {
			out = append(out, g.DisplayName)
		}
		if res.NextPageToken == "" {
			return out
		}
		req.PageToken = res.NextPageToken
	}
	t.Fatalf("ListGroups(%+v) did not reach the last page", req)
	return nil
}

// checkPageToken fails the test unless err is an *users.InvalidError on
// page_token with the reason ReasonInvalidPageToken.
func checkPageToken(t *testing.T, call string, err error) {
	t.Helper()
	var inv *users.InvalidError
	if !errors.As(err, &inv) || inv.Reason != users.ReasonInvalidPageToken ||
		len(inv.Violations) != 1 || inv.Violations[0].Field != "page_token" {
		t.Errorf("%s err = %v, want an InvalidError on page_token with reason %s", call, err, users.ReasonInvalidPageToken)
	}
}

// TestListGroupsOrderBy: ListGroups' order_by through the service, with
// its page tokens: each order pages through every group in its order;
// "", "create_time" and "create_time asc" are one order and share tokens;
// a token of one order is refused in another, and for another filter or
// query, as INVALID_PAGE_TOKEN.
func TestListGroupsOrderBy(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	// Created in this order, so that by creation they are as listed, and
	// by name: Alpha, alpha, Beta, Ébeta (as "ebeta"), Gamma, zeta.
	names := []string{"Gamma", "alpha", "Beta", "zeta", "Alpha", "Ébeta"}
	for _, name := range names {
		if _, err := svc.CreateGroup(ctx, "", &users.Group{DisplayName: name}); err != nil {
			t.Fatalf("CreateGroup(%q) err = %v", name, err)
		}
	}
	byName := []string{"alpha", "Alpha", "Beta", "Ébeta", "Gamma", "zeta"} // alpha was created first
	reversed := func(s []string) []string { s = slices.Clone(s); slices.Reverse(s); return s }
	for _, c := range []struct {
		orderBy string
		want    []string
	}{
		{"", names},
		{"create_time", names},
		{"create_time asc", names},
		{"create_time desc", reversed(names)},
		{"display_name", byName},
		{"display_name asc", byName},
		{"display_name desc", reversed(byName)},
	} {
		for _, size := range []int{1, 2, 4, 6, 50} {
			got := groupPagesOf(t, svc, users.GroupListRequest{OrderBy: c.orderBy}, size)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ListGroups(order_by %q) by pages of %d (-want +got):\n%s", c.orderBy, size, diff)
			}
		}
	}
	// Filters and the query combine with the order.
	got := groupPagesOf(t, svc, users.GroupListRequest{Filter: `display_name = "ALPHA"`, OrderBy: "display_name desc"}, 1)
	if want := []string{"Alpha", "alpha"}; !slices.Equal(got, want) {
		t.Errorf("ListGroups(display_name = ALPHA, display_name desc) = %v, want %v", got, want)
	}
	got = groupPagesOf(t, svc, users.GroupListRequest{Query: "ETA", OrderBy: "display_name desc"}, 1)
	if want := []string{"zeta", "Ébeta", "Beta"}; !slices.Equal(got, want) {
		t.Errorf("ListGroups(query eta, display_name desc) = %v, want %v", got, want)
	}

	tokens := map[string]string{}
	for _, orderBy := range []string{"", "create_time", "create_time asc", "create_time desc", "display_name", "display_name asc", "display_name desc"} {
		res, err := svc.ListGroups(ctx, users.GroupListRequest{PageSize: 2, OrderBy: orderBy})
		if err != nil || res.NextPageToken == "" {
			t.Fatalf("ListGroups(order_by %q) = %v, %v; want a next page", orderBy, res, err)
		}
		tokens[orderBy] = res.NextPageToken
	}
	// One order, one token: the spellings of an order share theirs.
	for _, same := range [][]string{{"", "create_time", "create_time asc"}, {"display_name", "display_name asc"}} {
		for _, o := range same[1:] {
			if tokens[o] != tokens[same[0]] {
				t.Errorf("the token of order_by %q differs from that of %q", o, same[0])
			}
		}
	}
	for from, token := range tokens {
		for _, to := range []string{"", "create_time desc", "display_name", "display_name desc"} {
			fromOrder, _ := users.ParseGroupOrderBy(from)
			toOrder, _ := users.ParseGroupOrderBy(to)
			_, err := svc.ListGroups(ctx, users.GroupListRequest{PageSize: 2, OrderBy: to, PageToken: token})
			call := "ListGroups(order_by " + to + ", the token of " + from + ")"
			if fromOrder == toOrder {
				if err != nil {
					t.Errorf("%s err = %v", call, err)
				}
				continue
			}
			checkPageToken(t, call, err)
		}
		// Bound to the filter and the query as well.
		_, err := svc.ListGroups(ctx, users.GroupListRequest{PageSize: 2, OrderBy: from, Query: "a", PageToken: token})
		checkPageToken(t, "ListGroups(another query)", err)
		_, err = svc.ListGroups(ctx, users.GroupListRequest{PageSize: 2, OrderBy: from, Filter: `display_name = "Beta"`, PageToken: token})
		checkPageToken(t, "ListGroups(another filter)", err)
	}
	for _, bad := range []string{"x", "!!!", tokens["display_name"][:20], tokens["display_name"] + "A", strings.Repeat("A", 30)} {
		_, err := svc.ListGroups(ctx, users.GroupListRequest{OrderBy: "display_name", PageToken: bad})
		checkPageToken(t, "ListGroups(display_name, a token of "+bad+")", err)
	}
	_, err := svc.ListGroups(ctx, users.GroupListRequest{OrderBy: "size"})
	checkInvalid(t, "ListGroups(order_by size)", err, "order_by")
}

// TestListGroupsTokenOfDefaultOrder: the tokens ListGroups made before it
// had order_by are valid still, for the default order (however spelled),
// and refused in the others. The token below is of the default tenant's
// list without filter or query, after the id
// 01900000-0000-7000-8000-000000000000, signed with DefaultPageTokenKey.
func TestListGroupsTokenOfDefaultOrder(t *testing.T) {
	const oldToken = "q3iCA9-ktTXtK0giwilRpzAxOTAwMDAwLTAwMDAtNzAwMC04MDAwLTAwMDAwMDAwMDAwMA"
	ctx := context.Background()
	svc := newService(t, users.Config{})
	for _, name := range []string{"One", "Two", "Three"} {
		if _, err := svc.CreateGroup(ctx, "", &users.Group{DisplayName: name}); err != nil {
			t.Fatal(err)
		}
	}
	for _, orderBy := range []string{"", "create_time", "createTime ASC"} {
		res, err := svc.ListGroups(ctx, users.GroupListRequest{PageToken: oldToken, OrderBy: orderBy})
		if err != nil || len(res.Groups) != 3 {
			t.Errorf("ListGroups(order_by %q, a token of before order_by) = %v, %v; want the 3 groups created after its id", orderBy, res, err)
		}
	}
	for _, orderBy := range []string{"create_time desc", "display_name", "display_name desc"} {
		_, err := svc.ListGroups(ctx, users.GroupListRequest{PageToken: oldToken, OrderBy: orderBy})
		checkPageToken(t, "ListGroups(order_by "+orderBy+", a token of before order_by)", err)
	}
}

// TestListGroupsLongNameToken: a token of the display_name order carries
// the last group's name key, whose longest (256 characters that fold to 12
// bytes each) still makes a token that ListGroupsRequest.page_token
// allows (8192 characters) and that continues the list.
func TestListGroupsLongNameToken(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	long := strings.Repeat("\U0001D160", users.MaxGroupDisplayNameLen) // 𝅘𝅥𝅮, three code points of 4 bytes folded
	if n := len(users.GroupNameKey(long)); n != 12*users.MaxGroupDisplayNameLen {
		t.Fatalf("len(GroupNameKey(long)) = %d, want %d", n, 12*users.MaxGroupDisplayNameLen)
	}
	for _, name := range []string{long, "\U0001D161", "a"} {
		if _, err := svc.CreateGroup(ctx, "", &users.Group{DisplayName: name}); err != nil {
			t.Fatalf("CreateGroup err = %v", err)
		}
	}
	req := users.GroupListRequest{PageSize: 2, OrderBy: "display_name"}
	res, err := svc.ListGroups(ctx, req)
	if err != nil || len(res.Groups) != 2 || res.Groups[1].DisplayName != long {
		t.Fatalf("ListGroups(display_name, first page) = %v, %v", res, err)
	}
	if n := len(res.NextPageToken); n > 8192 || n < 4096 {
		t.Errorf("the token after the longest name key is %d characters, want 4096 to 8192", n)
	}
	req.PageToken = res.NextPageToken
	res, err = svc.ListGroups(ctx, req)
	if err != nil || len(res.Groups) != 1 || res.Groups[0].DisplayName != "\U0001D161" || res.NextPageToken != "" {
		t.Errorf("ListGroups(display_name, second page) = %v, %v", res, err)
	}
}
