package userstest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usersd/usersd/internal/users"
)

// The users of the export benchmarks of the API (the gateway's NDJSON,
// the gRPC stream): users as a directory with profiles has them, every
// profile field set, so that a benchmark pays for each field's conversion
// and encoding as an export of real users does.

// ProfileUser returns user number i of a tenant of profile users: every
// profile field set, attributes of the three JSON scalar types (a string,
// a number, a boolean; one user in four has a nested object too), labels
// on every other user, one in three suspended.
func ProfileUser(i int) *users.User {
	departments := []string{"Sales", "Engineering", "R&D", "Support", "Finance"}
	attrs := fmt.Sprintf(`{"department":%q,"level":%d,"remote":%t}`, departments[i%len(departments)], i%7, i%2 == 0)
	if i%4 == 0 {
		attrs = fmt.Sprintf(`{"department":%q,"level":%d,"remote":%t,"manager":{"id":"m-%d","since":"2024-01-0%d"}}`,
			departments[i%len(departments)], i%7, i%2 == 0, i%13, 1+i%9)
	}
	a, err := users.NormalizeAttributes("attributes", []byte(attrs))
	if err != nil {
		panic(err) // the documents above are valid
	}
	u := &users.User{
		ID:          uuid.Must(uuid.NewV7()).String(),
		Email:       fmt.Sprintf("user-%07d@example.com", i),
		DisplayName: fmt.Sprintf("Zoë Ångström %d", i),
		State:       users.StateActive,
		Profile: users.Profile{
			ExternalID:    fmt.Sprintf("hr-%07d", i),
			GivenName:     "Zoë",
			FamilyName:    fmt.Sprintf("Ångström-Nuñez %d", i),
			PhoneNumber:   fmt.Sprintf("+1415555%04d", i%10000),
			EmailVerified: true,
			PhoneVerified: i%3 == 0,
			Locale:        "en-GB",
			TimeZone:      "Europe/London",
			Attributes:    a,
		},
		Revision: 1,
	}
	if i%3 == 1 {
		u.State = users.StateSuspended
	}
	if i%2 == 0 {
		u.Labels = map[string]string{"team": fmt.Sprint("t", i%10), "cost-center": fmt.Sprint(1000 + i%50)}
	}
	return u
}

// SeedProfiles creates the tenant (active) in s and stores n ProfileUsers
// in it, by imports of 1000 rows, with create times a millisecond apart.
// s must have a job queue (imports seed it).
func SeedProfiles(tb testing.TB, s ImportStore, tenant string, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := s.CreateTenant(ctx, &users.Tenant{ID: tenant, DisplayName: tenant, State: users.StateActive,
		CreateTime: base, UpdateTime: base, Revision: 1}); err != nil {
		tb.Fatalf("CreateTenant(%s) err = %v", tenant, err)
	}
	for done, c := 0, 0; done < n; c++ {
		size := min(1000, n-done)
		op, chunks := importIn(tenant, fmt.Sprintf("profiles-%d", c), size)
		rows := make([]users.ImportedUser, size)
		for i := range rows {
			u := ProfileUser(done + i)
			u.CreateTime = base.Add(time.Duration(done+i) * time.Millisecond)
			u.UpdateTime = u.CreateTime
			chunks[0].Rows[i] = users.ImportRow{Email: u.Email, DisplayName: u.DisplayName, State: u.State, Labels: u.Labels, Profile: u.Profile}
			rows[i] = users.ImportedUser{Index: i, User: u}
		}
		if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: op.RequestID}, chunks); err != nil {
			tb.Fatalf("CreateImport err = %v", err)
		}
		if err := s.ImportChunk(ctx, op.ID, 0, rows, nil); err != nil {
			tb.Fatalf("ImportChunk err = %v", err)
		}
		done += size
	}
}
