package sqlite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/users/userstest"
)

func TestCreateImportWithoutJobs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	op, chunks := userstest.NewImport("req", 2)
	_, err := s.CreateImport(ctx, op, users.IdempotencyKey{RequestID: "req", Fingerprint: []byte("fp")}, chunks)
	if err == nil || !strings.Contains(err.Error(), "no job queue configured") {
		t.Errorf("CreateImport without jobs err = %v, want no job queue configured", err)
	}
	if _, err := s.GetOperation(ctx, users.DefaultTenant, op.ID); !errors.Is(err, users.ErrNotFound) {
		t.Errorf("GetOperation after CreateImport without jobs err = %v, want ErrNotFound", err)
	}
}
