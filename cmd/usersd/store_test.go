package main

import (
	"context"
	"errors"
	"testing"
)

func TestMigrationsCheck(t *testing.T) {
	calls, pending, fail := 0, true, errors.New("db down")
	var answer error
	check := migrationsCheck(func(context.Context) (bool, error) {
		calls++
		return pending, answer
	})
	ctx := context.Background()
	if err := check(ctx); err == nil {
		t.Error("pending migrations: check = nil, want an error")
	}
	answer = fail
	if err := check(ctx); !errors.Is(err, fail) {
		t.Errorf("check = %v, want the database's error", err)
	}
	answer, pending = nil, false
	for range 3 {
		if err := check(ctx); err != nil {
			t.Errorf("applied: check = %v", err)
		}
	}
	if calls != 3 {
		t.Errorf("the database was asked %d times, want 3: once applied, migrations stay applied", calls)
	}
}
