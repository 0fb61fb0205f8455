package grpcserver

import (
	"errors"
	"strings"

	"github.com/usersd/usersd/internal/users"
)

// The field paths of errors. The domain names the fields of its requests
// in its own terms (users.FieldViolation): a resource is named by its
// "id", a batch by its "ids". Each API version names them in its own, and
// errors are renamed here, once, on their way out (Errors, streamStatus),
// by the service of the call, so that no handler can forget. v1's terms
// are the domain's; v2's are AIP-122 names.

// v2Fields are the domain's field paths that v2 names otherwise; "ids" and
// "ids[N]" are v2's "names" and "names[N]", the "user_ids[N]" of a
// membership change its "users[N]".
var v2Fields = map[string]string{
	"id":         "name",
	"user.id":    "user.name",
	"webhook.id": "webhook.name",
	"webhook_id": "parent",
}

// fieldV2 returns the v2 form of a field path of the domain's.
func fieldV2(f string) string {
	if v, ok := v2Fields[f]; ok {
		return v
	}
	if f == "ids" || strings.HasPrefix(f, "ids[") {
		return "names" + f[len("ids"):]
	}
	if f == "user_ids" || strings.HasPrefix(f, "user_ids[") {
		return "users" + f[len("user_ids"):]
	}
	return f
}

// apiFields returns err with the fields of its *users.InvalidError, if
// any, in the terms of the API version that method, a full method name,
// belongs to. Other errors, and the errors of v1 calls, are returned as
// they are.
func apiFields(method string, err error) error {
	if !strings.HasPrefix(method, "/users.v2.") {
		return err
	}
	var inv *users.InvalidError
	if !errors.As(err, &inv) {
		return err
	}
	renamed := &users.InvalidError{Violations: make([]users.FieldViolation, len(inv.Violations)), Reason: inv.Reason}
	for i, v := range inv.Violations {
		v.Field = fieldV2(v.Field)
		renamed.Violations[i] = v
	}
	return renamed
}
