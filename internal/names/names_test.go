package names_test

import (
	"testing"

	"github.com/usersd/usersd/internal/names"
)

func TestID(t *testing.T) {
	tests := []struct {
		c      names.Collection
		name   string
		id     string
		wantOK bool
	}{
		{names.Users, "users/42", "42", true},
		{names.Users, "users/a/b", "a/b", true}, // the id is the domain's to check
		{names.Users, "users/", "", false},
		{names.Users, "", "", false},
		{names.Users, "42", "", false},
		{names.Users, "webhooks/42", "", false},
		{names.Users, "Users/42", "", false},
		{names.Operations, "operations/7", "7", true},
		{names.Webhooks, "webhooks/9", "9", true},
		{names.Webhooks, "webhooks/9/deliveries", "9/deliveries", true},
		{names.UserEvents, "userEvents/1", "1", true},
		{names.UserEvents, "userevents/1", "", false},
	}
	for _, tt := range tests {
		id, ok := tt.c.ID(tt.name)
		if ok != tt.wantOK || id != tt.id {
			t.Errorf("%v.ID(%q) = %q, %v; want %q, %v", tt.c, tt.name, id, ok, tt.id, tt.wantOK)
		}
	}
}

func TestNameRoundTrip(t *testing.T) {
	for _, c := range []names.Collection{names.Users, names.Operations, names.UserEvents, names.Webhooks} {
		id := "0193a4c6-0000-7000-8000-000000000001"
		got, ok := c.ID(c.Name(id))
		if !ok || got != id {
			t.Errorf("ID(Name(%q)) = %q, %v", id, got, ok)
		}
	}
}

func TestNotOne(t *testing.T) {
	for c, want := range map[names.Collection]string{
		names.Users:      `"x" is not a user name (users/{id})`,
		names.Operations: `"x" is not an operation name (operations/{id})`,
		names.Webhooks:   `"x" is not a webhook name (webhooks/{id})`,
	} {
		if got := c.NotOne("x"); got != want {
			t.Errorf("NotOne = %q, want %q", got, want)
		}
	}
}
