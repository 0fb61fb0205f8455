package users_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/users"
)

// The tenants of the tests below: a caller bound to tenantA, another
// tenant, and one that does not exist.
const (
	tenantA       = "tenant-a"
	tenantB       = "tenant-b"
	tenantNowhere = "tenant-nowhere"
)

// tenantFixture is what a tenant holds for the tests: a user, an import, an
// event, a subscription.
type tenantFixture struct {
	user    *users.User
	op      *users.Operation
	hook    *users.Webhook
	cursor  string // of the tenant's first event
	eventN  int    // events of the tenant
	hookURL string
}

// newTenantFixture creates the tenant id, and in it a user, an import and a
// subscription, as an unbound (platform) caller.
func newTenantFixture(t *testing.T, svc *users.Service, id string) *tenantFixture {
	t.Helper()
	ctx := context.Background()
	if _, err := svc.CreateTenant(ctx, id, users.TenantRequest{DisplayName: "Tenant " + id}); err != nil {
		t.Fatalf("CreateTenant(%s) err = %v", id, err)
	}
	f := &tenantFixture{hookURL: "https://" + id + ".example.com/hook"}
	var err error
	f.user, err = svc.Create(ctx, users.CreateRequest{Tenant: id, User: &users.User{Email: "ada@" + id + ".example.com", DisplayName: "Ada"}})
	if err != nil {
		t.Fatalf("Create(%s) err = %v", id, err)
	}
	f.op, err = svc.Import(ctx, users.ImportRequest{Tenant: id, RequestID: "req-" + id, Rows: []users.ImportRow{{Email: "row@" + id + ".example.com", DisplayName: "Row"}}})
	if err != nil {
		t.Fatalf("Import(%s) err = %v", id, err)
	}
	f.hook, err = svc.CreateWebhook(ctx, users.WebhookRequest{Tenant: id, URL: f.hookURL, Enabled: true})
	if err != nil {
		t.Fatalf("CreateWebhook(%s) err = %v", id, err)
	}
	page, err := svc.ListEvents(ctx, id, "", 100)
	if err != nil || len(page.Events) == 0 {
		t.Fatalf("ListEvents(%s) = %+v, %v; want the user's creation", id, page, err)
	}
	f.cursor, f.eventN = page.Events[0].Pos.Cursor(), len(page.Events)
	return f
}

// boundCall is a Service call that names a tenant: do makes it in the
// tenant, about a resource of tenant B when exists is set (a user, an
// import, a subscription, an address or a cursor of B's), else about one
// that exists nowhere.
type boundCall struct {
	name string
	// byID: the call names a resource by id, so that naming B's id in the
	// caller's own tenant must find nothing either.
	byID bool
	// allTenants: the call takes users.AllTenants from an unbound caller.
	allTenants bool
	do         func(ctx context.Context, tenant string, exists bool) error
}

// boundCalls returns every Service call that names a tenant, about b's
// resources or absent ones.
func boundCalls(svc *users.Service, b *tenantFixture, absentID string) []boundCall {
	pick := func(exists bool, of, absent string) string {
		if exists {
			return of
		}
		return absent
	}
	user := func(exists bool) string { return pick(exists, b.user.ID, absentID) }
	hook := func(exists bool) string { return pick(exists, b.hook.ID, absentID) }
	email := func(exists bool) string { return pick(exists, b.user.Email, "nobody@example.com") }
	return []boundCall{
		{"Create", false, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.Create(ctx, users.CreateRequest{Tenant: tenant, User: &users.User{Email: email(exists), DisplayName: "Mallory"}, RequestID: "req-bound"})
			return err
		}},
		{"Get", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.Get(ctx, tenant, user(exists))
			return err
		}},
		{"BatchGet", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.BatchGet(ctx, tenant, []string{user(exists)})
			return err
		}},
		{"List", false, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.List(ctx, users.ListRequest{Tenant: tenant, Filter: `email = "` + email(exists) + `"`, ShowDeleted: true})
			return err
		}},
		{"Update", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.Update(ctx, users.UpdateRequest{Tenant: tenant, User: &users.User{ID: user(exists), DisplayName: "Mallory"}, Paths: []string{"display_name"}})
			return err
		}},
		{"Delete", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.Delete(ctx, tenant, user(exists), "")
			return err
		}},
		{"Undelete", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.Undelete(ctx, tenant, user(exists), "")
			return err
		}},
		{"Import", false, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.Import(ctx, users.ImportRequest{Tenant: tenant, RequestID: pick(exists, b.op.RequestID, "req-absent"), Rows: []users.ImportRow{{Email: email(exists), DisplayName: "Mallory"}}})
			return err
		}},
		{"GetOperation", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.GetOperation(ctx, tenant, pick(exists, b.op.ID, absentID))
			return err
		}},
		{"ListEvents", false, true, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.ListEvents(ctx, tenant, pick(exists, b.cursor, ""), 10)
			return err
		}},
		{"CreateWebhook", false, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.CreateWebhook(ctx, users.WebhookRequest{Tenant: tenant, URL: pick(exists, b.hookURL, "https://mallory.example.com/hook"), Enabled: true})
			return err
		}},
		{"GetWebhook", true, true, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.GetWebhook(ctx, tenant, hook(exists))
			return err
		}},
		{"ListWebhooks", false, true, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.ListWebhooks(ctx, tenant)
			return err
		}},
		{"UpdateWebhook", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.UpdateWebhook(ctx, hook(exists), users.WebhookRequest{Tenant: tenant, URL: "https://mallory.example.com/hook", Paths: []string{"url"}})
			return err
		}},
		{"DeleteWebhook", true, false, func(ctx context.Context, tenant string, exists bool) error {
			return svc.DeleteWebhook(ctx, tenant, hook(exists))
		}},
		{"ListDeliveryAttempts", true, false, func(ctx context.Context, tenant string, exists bool) error {
			_, err := svc.ListDeliveryAttempts(ctx, tenant, hook(exists), 10)
			return err
		}},
	}
}

// errText is the text of err with the ids, cursors and tenants the calls
// name replaced, so that the answers about different resources compare:
// what is left is what the answer says of them.
func errText(err error, names ...string) string {
	if err == nil {
		return "<nil>"
	}
	s := err.Error()
	for _, n := range names {
		if n != "" {
			s = strings.ReplaceAll(s, n, "<name>")
		}
	}
	return s
}

// TestBoundTenantIsolation: a caller bound to tenant A gets ErrNotFound for
// every call that names another tenant, or every tenant, or, in its own
// tenant, another tenant's resource by id; and the answer does not tell
// whether the resource exists there. Nothing of the other tenant changes.
func TestBoundTenantIsolation(t *testing.T) {
	bg := context.Background()
	svc := newService(t, users.Config{})
	a := newTenantFixture(t, svc, tenantA)
	b := newTenantFixture(t, svc, tenantB)
	absentID := users.NewID()
	bound := users.BindTenant(bg, tenantA)
	if got, ok := users.BoundTenant(bound); !ok || got != tenantA {
		t.Fatalf("BoundTenant(BindTenant(%s)) = %q, %v", tenantA, got, ok)
	}
	if _, ok := users.BoundTenant(bg); ok {
		t.Fatal("BoundTenant(an unbound context) says it is bound")
	}
	names := []string{b.user.ID, b.op.ID, b.hook.ID, b.cursor, b.user.Email, b.op.RequestID, b.hookURL,
		absentID, "nobody@example.com", "req-absent", "https://mallory.example.com/hook",
		tenantB, tenantNowhere, users.DefaultTenant}

	for _, c := range boundCalls(svc, b, absentID) {
		t.Run(c.name, func(t *testing.T) {
			// Another tenant, the default one ("") included, whether the
			// resource exists there or nowhere.
			exists := c.do(bound, tenantB, true)
			want := errText(exists, names...)
			for _, tt := range []struct {
				what   string
				tenant string
				exists bool
			}{
				{"tenant B, B's resource", tenantB, true},
				{"tenant B, a resource that does not exist", tenantB, false},
				{"a tenant that does not exist", tenantNowhere, true},
				{"the default tenant (\"\")", "", true},
				{"the default tenant", users.DefaultTenant, false},
			} {
				err := c.do(bound, tt.tenant, tt.exists)
				if !errors.Is(err, users.ErrNotFound) {
					t.Errorf("bound to %s, %s: err = %v, want ErrNotFound", tenantA, tt.what, err)
					continue
				}
				if got := errText(err, names...); got != want {
					t.Errorf("bound to %s, %s: err %q; for tenant B's resource %q: the answers differ", tenantA, tt.what, got, want)
				}
			}
			// Every tenant: not found for a bound caller where an unbound
			// one may read across tenants; elsewhere refused alike for
			// both.
			err := c.do(bound, users.AllTenants, true)
			if c.allTenants {
				if !errors.Is(err, users.ErrNotFound) {
					t.Errorf("bound to %s, every tenant: err = %v, want ErrNotFound", tenantA, err)
				}
				if unbound := c.do(bg, users.AllTenants, true); unbound != nil {
					t.Errorf("unbound, every tenant: err = %v, want it allowed", unbound)
				}
			} else {
				unbound := c.do(bg, users.AllTenants, true)
				if !errors.Is(err, users.ErrInvalid) || errText(err) != errText(unbound) {
					t.Errorf("every tenant: bound err = %v, unbound err = %v; want the same InvalidError", err, unbound)
				}
			}
			// In its own tenant, another tenant's id finds nothing, as an
			// id that exists nowhere.
			if c.byID {
				ofB, absent := c.do(bound, tenantA, true), c.do(bound, tenantA, false)
				if !errors.Is(ofB, users.ErrNotFound) || errText(ofB, names...) != errText(absent, names...) {
					t.Errorf("bound to %s, in %s with B's id: err = %v; with an id that exists nowhere: %v; want the same ErrNotFound", tenantA, tenantA, ofB, absent)
				}
			}
		})
	}

	// Nothing of B changed, nothing was added to it.
	if got, err := svc.Get(bg, tenantB, b.user.ID); err != nil || !cmp.Equal(b.user, got) {
		t.Errorf("B's user after the bound calls = %+v, %v; want %+v", got, err, b.user)
	}
	if res, err := svc.List(bg, users.ListRequest{Tenant: tenantB, ShowDeleted: true}); err != nil || len(res.Users) != 1 {
		t.Errorf("B's users after the bound calls = %+v, %v; want its 1 user", res, err)
	}
	if ws, err := svc.ListWebhooks(bg, tenantB); err != nil || len(ws) != 1 || !cmp.Equal(b.hook.URL, ws[0].URL) || ws[0].UpdateTime != b.hook.UpdateTime {
		t.Errorf("B's webhooks after the bound calls = %+v, %v; want %s unchanged", ws, err, b.hook.URL)
	}
	if page, err := svc.ListEvents(bg, tenantB, "", 100); err != nil || len(page.Events) != b.eventN {
		t.Errorf("B's events after the bound calls = %d, %v; want %d", len(page.Events), err, b.eventN)
	}
	if op, err := svc.GetOperation(bg, tenantB, b.op.ID); err != nil || op.ID != b.op.ID {
		t.Errorf("B's operation after the bound calls = %+v, %v", op, err)
	}

	// The bound caller acts in its own tenant.
	if got, err := svc.Get(bound, tenantA, a.user.ID); err != nil || got.ID != a.user.ID {
		t.Errorf("bound Get(%s, its user) = %+v, %v", tenantA, got, err)
	}
	if res, err := svc.List(bound, users.ListRequest{Tenant: tenantA}); err != nil || len(res.Users) != 1 || res.Users[0].ID != a.user.ID {
		t.Errorf("bound List(%s) = %+v, %v; want its user only", tenantA, res, err)
	}
	if _, err := svc.Update(bound, users.UpdateRequest{Tenant: tenantA, User: &users.User{ID: a.user.ID, DisplayName: "Renamed"}, Paths: []string{"display_name"}}); err != nil {
		t.Errorf("bound Update(%s, its user) err = %v", tenantA, err)
	}
	if op, err := svc.GetOperation(bound, tenantA, a.op.ID); err != nil || op.Tenant != tenantA {
		t.Errorf("bound GetOperation(%s, its import) = %+v, %v", tenantA, op, err)
	}
	page, err := svc.ListEvents(bound, tenantA, "", 100)
	if err != nil || len(page.Events) != a.eventN+1 {
		t.Errorf("bound ListEvents(%s) = %+v, %v; want its %d events", tenantA, page, err, a.eventN+1)
	} else {
		for _, ev := range page.Events {
			if ev.Tenant != tenantA {
				t.Errorf("bound ListEvents(%s) returned an event of tenant %q", tenantA, ev.Tenant)
			}
		}
	}
	if got, err := svc.GetWebhook(bound, tenantA, a.hook.ID); err != nil || got.ID != a.hook.ID {
		t.Errorf("bound GetWebhook(%s, its webhook) = %+v, %v", tenantA, got, err)
	}
}

// TestUnboundAllTenants: a caller not bound to a tenant reads the events
// and subscriptions of every tenant through users.AllTenants, and only
// those of one tenant through its id.
func TestUnboundAllTenants(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	a := newTenantFixture(t, svc, tenantA)
	b := newTenantFixture(t, svc, tenantB)
	d := mustCreate(t, svc, newUser(1))
	platform, err := svc.CreateWebhook(ctx, users.WebhookRequest{AllTenants: true, URL: "https://platform.example.com/hook", Enabled: true})
	if err != nil {
		t.Fatalf("CreateWebhook(every tenant) err = %v", err)
	}
	if platform.Tenant != users.DefaultTenant || !platform.AllTenants {
		t.Errorf("CreateWebhook(every tenant) = tenant %q, all tenants %v; want the default tenant's, to every tenant", platform.Tenant, platform.AllTenants)
	}

	byTenant := func(evs []users.Event) map[string][]string {
		m := map[string][]string{}
		for _, ev := range evs {
			m[ev.Tenant] = append(m[ev.Tenant], ev.UserID)
		}
		return m
	}
	page, err := svc.ListEvents(ctx, users.AllTenants, "", 100)
	if err != nil {
		t.Fatalf("ListEvents(every tenant) err = %v", err)
	}
	got := byTenant(page.Events)
	want := map[string][]string{tenantA: {a.user.ID}, tenantB: {b.user.ID}, users.DefaultTenant: {d.ID}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListEvents(every tenant) users by tenant (-want +got):\n%s", diff)
	}
	for tenant, ids := range want {
		page, err := svc.ListEvents(ctx, tenant, "", 100)
		if err != nil {
			t.Fatalf("ListEvents(%s) err = %v", tenant, err)
		}
		if diff := cmp.Diff(map[string][]string{tenant: ids}, byTenant(page.Events)); diff != "" {
			t.Errorf("ListEvents(%s) users by tenant (-want +got):\n%s", tenant, diff)
		}
	}

	ws, err := svc.ListWebhooks(ctx, users.AllTenants)
	if err != nil {
		t.Fatalf("ListWebhooks(every tenant) err = %v", err)
	}
	gotIDs := make([]string, len(ws))
	for i, w := range ws {
		gotIDs[i] = w.ID
	}
	if wantIDs := []string{a.hook.ID, b.hook.ID, platform.ID}; !slices.Equal(slices.Sorted(slices.Values(wantIDs)), slices.Sorted(slices.Values(gotIDs))) {
		t.Errorf("ListWebhooks(every tenant) = %v, want %v", gotIDs, wantIDs)
	}
	for _, w := range []*users.Webhook{a.hook, b.hook, platform} {
		if got, err := svc.GetWebhook(ctx, users.AllTenants, w.ID); err != nil || got.ID != w.ID || got.Tenant != w.Tenant {
			t.Errorf("GetWebhook(every tenant, %s) = %+v, %v; want the webhook of %s", w.URL, got, err, w.Tenant)
		}
	}
	if _, err := svc.GetWebhook(ctx, tenantA, b.hook.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetWebhook(%s, B's webhook) err = %v, want ErrNotFound", tenantA, err)
	}
	if ws, err := svc.ListWebhooks(ctx, tenantA); err != nil || len(ws) != 1 || ws[0].ID != a.hook.ID {
		t.Errorf("ListWebhooks(%s) = %v, %v; want its 1 webhook", tenantA, ws, err)
	}
}

// TestBoundAllTenantsWebhooks: a bound caller cannot subscribe to every
// tenant's events, and does not see, change or delete the platform's
// subscriptions of its own tenant.
func TestBoundAllTenantsWebhooks(t *testing.T) {
	bg := context.Background()
	svc := newService(t, users.Config{})
	a := newTenantFixture(t, svc, tenantA)
	platform, err := svc.CreateWebhook(bg, users.WebhookRequest{Tenant: tenantA, AllTenants: true, URL: "https://platform.example.com/hook", Enabled: true})
	if err != nil {
		t.Fatalf("CreateWebhook(%s, every tenant) err = %v", tenantA, err)
	}
	bound := users.BindTenant(bg, tenantA)

	_, err = svc.CreateWebhook(bound, users.WebhookRequest{Tenant: tenantA, AllTenants: true, URL: "https://mallory.example.com/hook", Enabled: true})
	checkInvalid(t, "bound CreateWebhook(every tenant)", err, "webhook.all_tenants")

	ws, err := svc.ListWebhooks(bound, tenantA)
	if err != nil || len(ws) != 1 || ws[0].ID != a.hook.ID {
		t.Errorf("bound ListWebhooks(%s) = %v, %v; want its own webhook only, not the platform's", tenantA, ws, err)
	}
	absentID := users.NewID()
	for _, c := range boundCalls(svc, &tenantFixture{hook: platform}, absentID) {
		if !strings.Contains(c.name, "Webhook") && c.name != "ListDeliveryAttempts" || !c.byID {
			continue
		}
		ofPlatform, absent := c.do(bound, tenantA, true), c.do(bound, tenantA, false)
		if !errors.Is(ofPlatform, users.ErrNotFound) || errText(ofPlatform, platform.ID, absentID) != errText(absent, platform.ID, absentID) {
			t.Errorf("bound %s(%s, the platform's webhook) err = %v; with an absent id: %v; want the same ErrNotFound", c.name, tenantA, ofPlatform, absent)
		}
	}
	got, err := svc.GetWebhook(bg, tenantA, platform.ID)
	if err != nil {
		t.Fatalf("unbound GetWebhook(%s, the platform's webhook) err = %v", tenantA, err)
	}
	if got.URL != platform.URL || got.UpdateTime != platform.UpdateTime {
		t.Errorf("the platform's webhook after the bound calls = %+v, want %+v unchanged", got, platform)
	}
	if ws, err := svc.ListWebhooks(bg, tenantA); err != nil || len(ws) != 2 {
		t.Errorf("unbound ListWebhooks(%s) = %v, %v; want its webhook and the platform's", tenantA, ws, err)
	}
}

// TestListPageTokenTenant: a page token of one tenant's list is refused in
// another's.
func TestListPageTokenTenant(t *testing.T) {
	ctx := context.Background()
	svc := newService(t, users.Config{})
	for _, id := range []string{tenantA, tenantB} {
		if _, err := svc.CreateTenant(ctx, id, users.TenantRequest{DisplayName: id}); err != nil {
			t.Fatal(err)
		}
		for n := range 3 {
			if _, err := svc.Create(ctx, users.CreateRequest{Tenant: id, User: newUser(n)}); err != nil {
				t.Fatalf("Create(%s) err = %v", id, err)
			}
		}
	}
	first := list(t, svc, users.ListRequest{Tenant: tenantA, PageSize: 2})
	if first.NextPageToken == "" {
		t.Fatal("List(page size 2 of 3) has no next page")
	}
	next := list(t, svc, users.ListRequest{Tenant: tenantA, PageSize: 2, PageToken: first.NextPageToken})
	if len(next.Users) != 1 || next.Users[0].Tenant != tenantA {
		t.Errorf("List(%s, page 2) = %+v, want its last user", tenantA, next.Users)
	}
	for _, tenant := range []string{tenantB, users.DefaultTenant} {
		_, err := svc.List(ctx, users.ListRequest{Tenant: tenant, PageSize: 2, PageToken: first.NextPageToken})
		checkInvalid(t, fmt.Sprintf("List(%s, a page token of %s)", tenant, tenantA), err, "page_token")
	}
}
