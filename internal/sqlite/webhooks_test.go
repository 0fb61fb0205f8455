package sqlite_test

import (
	"context"
	"strings"
	"testing"
)

func TestDispatchEventsWithoutJobs(t *testing.T) {
	s := newStore(t)
	_, err := s.DispatchEvents(context.Background(), 10)
	if err == nil || !strings.Contains(err.Error(), "no job queue configured") {
		t.Errorf("DispatchEvents without jobs err = %v, want no job queue configured", err)
	}
}
