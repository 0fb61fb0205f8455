package grpcserver

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/users"
)

// namePrefix starts every v2 resource name: a user's is "users/{id}"
// (AIP-122).
const namePrefix = "users/"

// userName returns the v2 resource name of the user with the id.
func userName(id string) string { return namePrefix + id }

// idFromName returns the id in a resource name. An empty name is an empty
// id, which the domain reports as required; any other name that is not
// "users/" followed by something is invalid on field. Whether the id is a
// UUID is the domain's to check.
func idFromName(field, name string) (string, error) {
	if name == "" {
		return "", nil
	}
	id, ok := cutName(name)
	if !ok {
		return "", users.Invalid(field, notAName(name))
	}
	return id, nil
}

// idsFromNames returns the ids in BatchGetUsers' names, or an error that
// names every malformed one.
func idsFromNames(names []string) ([]string, error) {
	ids := make([]string, len(names))
	inv := &users.InvalidError{}
	for i, name := range names {
		id, ok := cutName(name)
		if !ok {
			inv.Violations = append(inv.Violations, users.FieldViolation{Field: fmt.Sprintf("names[%d]", i), Description: notAName(name)})
		}
		ids[i] = id
	}
	if len(inv.Violations) > 0 {
		return nil, inv
	}
	return ids, nil
}

// cutName returns what follows "users/" in name, and whether that is
// something.
func cutName(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, namePrefix)
	return id, ok && id != ""
}

func notAName(name string) string {
	return fmt.Sprintf("%q is not a user name (%s{id})", name, namePrefix)
}

// toProtoV2 returns the v2 form of a user.
func toProtoV2(u *users.User) *usersv2.User {
	return &usersv2.User{
		Name:        userName(u.ID),
		Email:       u.Email,
		DisplayName: u.DisplayName,
		State:       usersv2.User_State(u.State),
		Labels:      u.Labels,
		CreateTime:  timestamppb.New(u.CreateTime),
		UpdateTime:  timestamppb.New(u.UpdateTime),
		DeleteTime:  optionalTime(u.DeleteTime),
		Etag:        u.Etag(),
	}
}

// optionalTime returns nil for the zero time, so that unset stays unset.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func toProtosV2(us []*users.User) []*usersv2.User {
	out := make([]*usersv2.User, len(us))
	for i, u := range us {
		out[i] = toProtoV2(u)
	}
	return out
}

// fromProtoV2 returns the fields of a user that callers may set, its name
// turned into an id.
func fromProtoV2(u *usersv2.User) (*users.User, error) {
	if u == nil {
		return nil, nil
	}
	id, err := idFromName("user.name", u.GetName())
	if err != nil {
		return nil, err
	}
	return &users.User{
		ID:          id,
		Email:       u.GetEmail(),
		DisplayName: u.GetDisplayName(),
		State:       users.State(u.GetState()),
		Labels:      u.GetLabels(),
	}, nil
}

// pathsV2 returns an update mask's paths in the domain's terms: v2's name,
// like v1's id, identifies the user and is ignored as a path; "id" is no
// field of v2's User.
func pathsV2(paths []string) ([]string, error) {
	out := make([]string, len(paths))
	for i, p := range paths {
		switch p {
		case "id":
			return nil, users.Invalid("update_mask", `unknown field "id" (v2 names users by name)`)
		case "name":
			p = "id"
		}
		out[i] = p
	}
	return out, nil
}

// fieldV2 returns the v2 form of a field the domain names in v1's terms:
// "id" is "name", "user.id" is "user.name", "ids[3]" is "names[3]".
func fieldV2(f string) string {
	switch {
	case f == "id":
		return "name"
	case f == "user.id":
		return "user.name"
	case f == "ids" || strings.HasPrefix(f, "ids["):
		return "names" + f[len("ids"):]
	}
	return f
}

// errorV2 returns err with the fields of its *users.InvalidError, if any,
// renamed by fieldV2. The domain's field names are v1's; every error of the
// domain passes through here on its way to a v2 client. Other errors are
// returned as they are.
func errorV2(err error) error {
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

// userV2 returns the v2 form of a domain call's result.
func userV2(u *users.User, err error) (*usersv2.User, error) {
	if err != nil {
		return nil, errorV2(err)
	}
	return toProtoV2(u), nil
}

// operationID returns the id in an operation's name, "operations/{id}". An
// empty name is an empty id, which the domain reports as required.
func operationID(name string) (string, error) {
	if name == "" {
		return "", nil
	}
	id, ok := strings.CutPrefix(name, operationPrefix)
	if !ok || id == "" {
		return "", users.Invalid("name", fmt.Sprintf("%q is not an operation name (%s{id})", name, operationPrefix))
	}
	return id, nil
}

// operationToProtoV2 returns the v2 form of an operation.
func operationToProtoV2(op *users.Operation) *usersv2.Operation {
	pb := &usersv2.Operation{
		Name: operationPrefix + op.ID,
		Done: op.Done(),
		Metadata: &usersv2.ImportUsersMetadata{
			Total:      int32(op.Total),
			Imported:   int32(op.Imported),
			Failed:     int32(op.Failed),
			CreateTime: timestamppb.New(op.CreateTime),
			UpdateTime: timestamppb.New(op.UpdateTime),
		},
	}
	if pb.Done {
		pb.Response = &usersv2.ImportUsersResponse{Failures: make([]*usersv2.ImportFailure, len(op.Failures))}
		for i, f := range op.Failures {
			pb.Response.Failures[i] = &usersv2.ImportFailure{Index: int32(f.Index), Reason: f.Reason}
		}
	}
	return pb
}
