package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/usersd/usersd/internal/sqlite"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func BenchmarkCreateUser(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := s.CreateUser(ctx, userstest.NewUser(i), nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateUserIdempotent(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		key := &users.IdempotencyKey{RequestID: fmt.Sprint("req-", i), Fingerprint: []byte("fingerprint")}
		if _, err := s.CreateUser(ctx, userstest.NewUser(i), key); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetUser(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetUser(ctx, users.DefaultTenant, u.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkUpdateUser(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	u, err := s.CreateUser(ctx, userstest.NewUser(1), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.UpdateUser(ctx, users.DefaultTenant, u.ID, func(x *users.User) error { x.DisplayName = "Renamed"; return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListUsers(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	for i := range 200 {
		if _, err := s.CreateUser(ctx, userstest.NewUser(i), nil); err != nil {
			b.Fatal(err)
		}
	}
	q := users.ListQuery{Tenant: users.DefaultTenant, Order: users.Order{Field: users.OrderEmail}, Limit: 50,
		Filter: users.Filter{{Field: users.FieldState, Op: users.OpEq, Value: users.StateActive}}}
	b.ReportAllocs()
	for b.Loop() {
		got, err := s.ListUsers(ctx, q)
		if err != nil || len(got) != 50 {
			b.Fatal(len(got), err)
		}
	}
}

// BenchmarkImport creates an import of one full chunk and imports it.
func BenchmarkImport(b *testing.B) {
	ctx := context.Background()
	s, _ := newStoreWithJobs(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		op, chunks := userstest.NewImport(fmt.Sprint("bench-", i), users.DefaultImportChunkSize)
		if _, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: op.RequestID}, chunks); err != nil {
			b.Fatal(err)
		}
		if err := s.ImportChunk(ctx, op.ID, 0, userstest.ImportedUsers(chunks[0]), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReads: see userstest.BenchmarkReads; the same runs on Postgres.
func BenchmarkReads(b *testing.B) {
	s, _ := newStoreWithJobs(b)
	userstest.BenchmarkReads(b, s)
}

// BenchmarkGroupMembers: see userstest.BenchmarkGroupMembers; the same
// runs on Postgres.
func BenchmarkGroupMembers(b *testing.B) {
	s, _ := newStoreWithJobs(b)
	userstest.BenchmarkGroupMembers(b, s)
}

// BenchmarkTraced is BenchmarkCreateUser and BenchmarkGetUser with
// tracing on: an SDK tracer provider with no exporter, so it measures
// making the spans, not sending them. "sampled" runs within a request span
// of the default sampler (every statement gets a span); "unsampled" within
// a request span that is not recorded, as 99% of requests are with a
// production sampler such as parentbased_traceidratio 0.01.
func BenchmarkTraced(b *testing.B) {
	for _, sampled := range []bool{true, false} {
		name := map[bool]string{true: "sampled", false: "unsampled"}[sampled]
		b.Run("CreateUser/"+name, func(b *testing.B) {
			tp := newBenchTracer(b, sampled)
			s := sqlite.NewStore(openTracedDB(b, sqlite.WithTracerProvider(tp)))
			ctx, root := tp.Tracer("bench").Start(context.Background(), "request")
			defer root.End()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := s.CreateUser(ctx, userstest.NewUser(i), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("GetUser/"+name, func(b *testing.B) {
			tp := newBenchTracer(b, sampled)
			s := sqlite.NewStore(openTracedDB(b, sqlite.WithTracerProvider(tp)))
			u, err := s.CreateUser(context.Background(), userstest.NewUser(1), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx, root := tp.Tracer("bench").Start(context.Background(), "request")
				defer root.End()
				for pb.Next() {
					if _, err := s.GetUser(ctx, users.DefaultTenant, u.ID); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// newBenchTracer returns an SDK tracer provider with no span processor
// (spans are recorded, then dropped) whose sampler is the default, or,
// unless sampled, one that records no span.
func newBenchTracer(b *testing.B, sampled bool) *sdktrace.TracerProvider {
	var opts []sdktrace.TracerProviderOption
	if !sampled {
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	b.Cleanup(func() { tp.Shutdown(context.Background()) })
	return tp
}
