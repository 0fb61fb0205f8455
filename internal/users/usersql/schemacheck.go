package usersql

import (
	"fmt"

	"github.com/usersd/usersd/internal/users"
)

// SchemaCheckRequestID is the request_id of the operation of the schema
// check id: unique in its tenant like an import's, and never one an import
// may have (request ids hold no space).
func SchemaCheckRequestID(id string) string { return "schema check " + id }

// SetOperationKind sets op's Kind from the stored operations.kind; a
// schema check has no request id of the caller's.
func SetOperationKind(op *users.Operation, kind string) error {
	k, ok := users.ParseOperationKind(kind)
	if !ok {
		return fmt.Errorf("operation %s: stored kind %q", op.ID, kind)
	}
	op.Kind = k
	if k == users.OperationSchemaCheck {
		op.RequestID = ""
	}
	return nil
}
