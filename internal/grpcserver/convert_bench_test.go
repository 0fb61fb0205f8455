package grpcserver

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

// benchUsers returns n stored users as the stores return them: two labels,
// times at microsecond precision.
func benchUsers(n int) []*users.User {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)
	out := make([]*users.User, n)
	for i := range out {
		out[i] = &users.User{
			ID:          uuid.Must(uuid.NewV7()).String(),
			Email:       fmt.Sprintf("user%d@example.com", i),
			DisplayName: fmt.Sprintf("User %d", i),
			State:       users.StateActive,
			Labels:      map[string]string{"team": "math", "tier": "gold"},
			CreateTime:  ts,
			UpdateTime:  ts,
			Revision:    3,
		}
	}
	return out
}

// BenchmarkConvert measures the mapping between the domain's users and the
// API's messages that every call does: one user (GetUser, CreateUser), a
// page of 50 (ListUsers) and a request's user (CreateUser, UpdateUser), in
// both API versions. toProto includes the etag, a SHA-256 per user.
func BenchmarkConvert(b *testing.B) {
	one := benchUsers(1)[0]
	page := benchUsers(50)
	b.Run("v1/toProto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			toProto(one)
		}
	})
	b.Run("v1/toProtos-50", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			toProtos(page)
		}
	})
	in := &usersv1.User{Email: one.Email, DisplayName: one.DisplayName, State: usersv1.User_STATE_ACTIVE, Labels: one.Labels}
	b.Run("v1/fromProto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			fromProto(in)
		}
	})
	b.Run("v2/toProto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			toProtoV2(one)
		}
	})
	b.Run("v2/toProtos-50", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			toProtosV2(page)
		}
	})
	inV2 := &usersv2.User{Name: userName(users.DefaultTenant, one.ID), Email: one.Email, DisplayName: one.DisplayName, State: usersv2.User_STATE_ACTIVE, Labels: one.Labels}
	b.Run("v2/fromProto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fromProtoV2(inV2); err != nil {
				b.Fatal(err)
			}
		}
	})
}
