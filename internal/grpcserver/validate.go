package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/usersd/usersd/internal/users"
)

// validator checks requests, in ValidateInterceptor, and the rows of
// imports, in importRows, against the protovalidate rules of the contract.
// It is protovalidate's shared one, so each message's rules compile once.
var validator = protovalidate.GlobalValidator

// ValidateInterceptor checks every request against the protovalidate rules
// of the contract. A request that breaks them fails with INVALID_ARGUMENT and
// a google.rpc.BadRequest that names each field, before any handler runs.
func ValidateInterceptor(v protovalidate.Validator) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m, ok := req.(proto.Message)
		if !ok {
			return handler(ctx, req)
		}
		if err := v.Validate(m); err != nil {
			return nil, invalidFrom(err)
		}
		return handler(ctx, req)
	}
}

// invalidFrom converts protovalidate's error into the domain's.
func invalidFrom(err error) error {
	var verr *protovalidate.ValidationError
	if !errors.As(err, &verr) {
		return fmt.Errorf("validating request: %w", err)
	}
	return &users.InvalidError{Violations: fieldViolations(verr)}
}

func fieldViolations(verr *protovalidate.ValidationError) []users.FieldViolation {
	vs := make([]users.FieldViolation, len(verr.Violations))
	for i, v := range verr.Violations {
		vs[i] = users.FieldViolation{
			Field:       protovalidate.FieldPathString(v.Proto.GetField()),
			Description: v.Proto.GetMessage(),
		}
	}
	return vs
}

// importRows returns the domain's form of the rows of an import, in the
// contract's User type M. ValidateInterceptor skips the rows (their rule is
// IGNORE_ALWAYS) so that one bad row does not fail the import: importRows
// validates each on its own instead. settable returns a row with only the
// fields a caller may set, which is what is validated, so the id (v1), name
// (v2) and output-only fields are ignored as CreateUser ignores them; fields
// returns those fields in the domain's terms. A row that breaks the rules
// keeps its fields, with Reject set to every violation as "field: problem",
// joined by "; ".
func importRows[M proto.Message](in []M, settable func(M) M, fields func(M) (*users.User, error)) ([]users.ImportRow, error) {
	rows := make([]users.ImportRow, len(in))
	for i, m := range in {
		m = settable(m)
		u, err := fields(m)
		if err != nil {
			rows[i].Reject = strings.TrimPrefix(err.Error(), "invalid argument: user.")
			continue
		}
		rows[i] = users.ImportRow{Email: u.Email, DisplayName: u.DisplayName, State: u.State, Labels: u.Labels, Profile: u.Profile}
		err = validator.Validate(m)
		if err == nil {
			continue
		}
		var verr *protovalidate.ValidationError
		if !errors.As(err, &verr) {
			return nil, fmt.Errorf("validating users[%d]: %w", i, err)
		}
		reasons := make([]string, len(verr.Violations))
		for j, v := range fieldViolations(verr) {
			reasons[j] = v.Field + ": " + v.Description
		}
		rows[i].Reject = strings.Join(reasons, "; ")
	}
	return rows, nil
}
