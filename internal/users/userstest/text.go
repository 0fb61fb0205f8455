package userstest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/usersd/usersd/internal/users"
)

// hostileText holds values that no text field may store, each with the
// character that makes it so: C0 controls (NUL above all, which Postgres
// cannot store, and the whitespace ones), DEL, C1 controls, and a byte that
// is not UTF-8.
var hostileText = []struct{ name, s string }{
	{"NUL", "\x00nul"},
	{"NUL inside", "Ada\x00Lovelace"},
	{"SOH", "a\x01b"},
	{"TAB", "tab\there"},
	{"LF", "line\nfeed"},
	{"CR", "carriage\rreturn"},
	{"ESC", "\x1b[31mred"},
	{"US", "unit\x1fsep"},
	{"DEL", "del\x7f"},
	{"C1 PAD", "pad\u0080"},
	{"C1 NEL", "next\u0085line"},
	{"C1 APC", "apc\u009f"},
	{"not UTF-8", "bad\xffbyte"},
}

// storable reports whether s is text that a store may hold: valid UTF-8
// without control characters.
func storable(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

// wantInvalid fails the test unless err is a users.ErrInvalid that names
// field.
func wantInvalid(t *testing.T, call string, err error, field string) {
	t.Helper()
	var inv *users.InvalidError
	if !errors.As(err, &inv) {
		t.Errorf("%s err = %v, want an InvalidError naming %s", call, err, field)
		return
	}
	for _, v := range inv.Violations {
		if v.Field == field {
			return
		}
	}
	t.Errorf("%s err = %v, want %s named", call, err, field)
}

// testControlCharacters drives a users.Service on the store with every
// hostile value in every text field a caller sets: each is refused with
// ErrInvalid naming the field, and none reaches the store, whose users,
// webhooks and import jobs hold storable text only afterwards.
func testControlCharacters(t *testing.T, s users.Store, jobs *Jobs) {
	ctx := context.Background()
	svc := users.NewService(s, users.Config{})
	existing, err := svc.Create(ctx, users.CreateRequest{User: NewUser(0)})
	if err != nil {
		t.Fatalf("Create err = %v", err)
	}
	hook, err := svc.CreateWebhook(ctx, users.WebhookRequest{URL: "https://example.com/hook", Enabled: true})
	if err != nil {
		t.Fatalf("CreateWebhook err = %v", err)
	}
	var rows []users.ImportRow
	for i, h := range hostileText {
		t.Run(h.name, func(t *testing.T) {
			email := fmt.Sprintf("hostile%d@example.com", i)
			for _, tt := range []struct {
				field string
				user  users.User
			}{
				{"user.display_name", users.User{Email: email, DisplayName: h.s}},
				{"user.email", users.User{Email: "a" + h.s + "@example.com", DisplayName: "A"}},
				{"user.labels", users.User{Email: email, DisplayName: "A", Labels: map[string]string{"team": h.s}}},
			} {
				u := tt.user
				_, err := svc.Create(ctx, users.CreateRequest{User: &u})
				wantInvalid(t, fmt.Sprintf("Create(%s %q)", tt.field, h.s), err, tt.field)
				_, err = svc.Create(ctx, users.CreateRequest{User: &u, RequestID: fmt.Sprintf("hostile-%d", i)})
				wantInvalid(t, fmt.Sprintf("Create(%s %q) with a request id", tt.field, h.s), err, tt.field)

				u.ID = existing.ID
				_, err = svc.Update(ctx, users.UpdateRequest{User: &u, Paths: []string{strings.TrimPrefix(tt.field, "user.")}})
				wantInvalid(t, fmt.Sprintf("Update(%s %q)", tt.field, h.s), err, tt.field)

				rows = append(rows, users.ImportRow{Email: u.Email, DisplayName: u.DisplayName, Labels: u.Labels})
			}
			_, err := svc.List(ctx, users.ListRequest{Filter: `display_name = "` + h.s + `"`})
			wantInvalid(t, fmt.Sprintf("List(display_name = %q)", h.s), err, "filter")

			_, err = svc.CreateWebhook(ctx, users.WebhookRequest{URL: "https://example.com/" + h.s})
			wantInvalid(t, fmt.Sprintf("CreateWebhook(url %q)", h.s), err, "webhook.url")
			_, err = svc.UpdateWebhook(ctx, hook.ID, users.WebhookRequest{URL: "https://example.com/" + h.s, Paths: []string{"url"}})
			wantInvalid(t, fmt.Sprintf("UpdateWebhook(url %q)", h.s), err, "webhook.url")
		})
	}

	// An import takes the rows, one valid among them: the others fail
	// one by one with the field named, and their values never reach the
	// jobs' arguments.
	rows = append(rows, users.ImportRow{Email: "valid@example.com", DisplayName: "Valid"})
	op, err := svc.Import(ctx, users.ImportRequest{Rows: rows, RequestID: "hostile-import"})
	if err != nil {
		t.Fatalf("Import err = %v", err)
	}
	for _, c := range jobs.Chunks() {
		for i, r := range c.Rows {
			for _, v := range append([]string{r.Email, r.DisplayName, r.Reject}, slices.Collect(maps.Values(r.Labels))...) {
				if !storable(v) {
					t.Errorf("import row %d enqueued with %q", c.First+i, v)
				}
			}
		}
		if err := svc.ImportChunk(ctx, c); err != nil {
			t.Fatalf("ImportChunk(%d) err = %v", c.Chunk, err)
		}
	}
	op, err = svc.GetOperation(ctx, users.DefaultTenant, op.ID)
	if err != nil {
		t.Fatalf("GetOperation err = %v", err)
	}
	if !op.Done() || op.Imported != 1 || op.Failed != len(rows)-1 {
		t.Errorf("import: done %v, %d imported, %d failed; want done, 1 and %d", op.Done(), op.Imported, op.Failed, len(rows)-1)
	}
	fields := []string{"display_name: ", "email: ", "labels: "}
	for _, f := range op.Failures {
		if want := fields[f.Index%len(fields)]; !strings.HasPrefix(f.Reason, want) || !storable(f.Reason) {
			t.Errorf("row %d failed with %q, want a reason that starts with %q", f.Index, f.Reason, want)
		}
	}

	// A receiver's error, which the service does not choose, is stored
	// with its control characters replaced.
	got, err := svc.RecordDeliveryAttempt(ctx, users.DeliveryAttempt{
		WebhookID: hook.ID, EventID: users.NewID(), EventType: users.EventCreated, Attempt: 1,
		Error: "status 500: \x00\x1b[2J\xff\u0085",
	})
	if err != nil || got.ConsecutiveFailures != 1 {
		t.Fatalf("RecordDeliveryAttempt = %v, %v; want a webhook with one failure", got, err)
	}
	attempts, err := svc.ListDeliveryAttempts(ctx, users.DefaultTenant, hook.ID, 10)
	if err != nil || len(attempts) != 1 {
		t.Fatalf("ListDeliveryAttempts = %v, %v; want one attempt", attempts, err)
	}
	if got, want := attempts[0].Error, "status 500: \uFFFD\uFFFD[2J\uFFFD\uFFFD"; got != want {
		t.Errorf("stored error = %q, want %q", got, want)
	}

	// Nothing else was stored.
	res, err := svc.List(ctx, users.ListRequest{ShowDeleted: true})
	if err != nil {
		t.Fatalf("List err = %v", err)
	}
	var emails []string
	for _, u := range res.Users {
		emails = append(emails, u.Email)
	}
	if want := []string{existing.Email, "valid@example.com"}; !slices.Equal(emails, want) {
		t.Errorf("users stored = %q, want %q", emails, want)
	}
	if u, err := svc.Get(ctx, users.DefaultTenant, existing.ID); err != nil || u.Revision != existing.Revision {
		t.Errorf("Get(%s) = revision %v, %v; want %d: an update went through", existing.ID, u, err, existing.Revision)
	}
	hooks, err := svc.ListWebhooks(ctx, users.DefaultTenant)
	if err != nil || len(hooks) != 1 || hooks[0].URL != hook.URL {
		t.Errorf("ListWebhooks = %v, %v; want only %s", hooks, err, hook.URL)
	}
}
