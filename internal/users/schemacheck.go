package users

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// OperationKind is what a long-running operation does.
type OperationKind int

// The kinds of operations.
const (
	// OperationImport is a bulk import (Service.Import).
	OperationImport OperationKind = iota
	// OperationSchemaCheck is a schema check (SchemaCheck): Operation's
	// Imported counts the users checked, Failed those whose attributes
	// break the schema, and Failures are up to MaxSchemaCheckSamples of
	// the violations (SchemaViolations).
	OperationSchemaCheck
)

// String returns the kind as the stores keep it: "import" or
// "schema_check".
func (k OperationKind) String() string {
	switch k {
	case OperationImport:
		return "import"
	case OperationSchemaCheck:
		return "schema_check"
	}
	return "OperationKind(" + strconv.Itoa(int(k)) + ")"
}

// ParseOperationKind is the inverse of OperationKind.String.
func ParseOperationKind(s string) (OperationKind, bool) {
	switch s {
	case "import":
		return OperationImport, true
	case "schema_check":
		return OperationSchemaCheck, true
	}
	return 0, false
}

// MaxSchemaCheckSamples bounds the violations a schema check keeps.
const MaxSchemaCheckSamples = 100

// SchemaCheck is a schema check: the long-running operation that setting
// or changing a tenant's attributes schema starts (Tenant.SchemaCheck). It
// counts the tenant's users that are not deleted and whose attributes break
// Schema, the schema it was started for (whatever the tenant's schema is
// when it runs), and changes no user. Its operation has one chunk, recorded
// when the check is done (RecordSchemaCheck).
type SchemaCheck struct {
	Tenant      string
	OperationID string
	// Schema is the text of the schema to check against
	// (TenantSettings.AttributesSchema as it was set).
	Schema string
	// CreateTime is when the check was started: the tenant's UpdateTime.
	CreateTime time.Time
}

// SchemaViolation is one value of a user's attributes that breaks the
// schema of a schema check.
type SchemaViolation struct {
	// Index is the position of the user among those checked, from 0.
	Index int
	// User is the user's id.
	User string
	// Field is "attributes" followed by the JSON pointer of the failing
	// value ("attributes/address/zip").
	Field       string
	Description string
}

// schemaViolationReason is the RowFailure.Reason that keeps a violation of
// the user's attributes: "<user id>: <field>: <description>", the field
// quoted (Go syntax) when it holds ": " or begins with a quote, so that
// SchemaViolations reads it back whatever the attributes' keys.
func schemaViolationReason(user string, v FieldViolation) string {
	field := v.Field
	if strings.Contains(field, ": ") || strings.HasPrefix(field, `"`) {
		field = strconv.Quote(field)
	}
	return storableText(user + ": " + field + ": " + v.Description)
}

// SchemaViolations returns the violations a schema check's Failures keep.
func (o *Operation) SchemaViolations() []SchemaViolation {
	out := make([]SchemaViolation, len(o.Failures))
	for i, f := range o.Failures {
		user, rest, _ := strings.Cut(f.Reason, ": ")
		v := SchemaViolation{Index: f.Index, User: user}
		if q, err := strconv.QuotedPrefix(rest); err == nil && strings.HasPrefix(rest[len(q):], ": ") {
			v.Field, _ = strconv.Unquote(q)
			v.Description = rest[len(q)+2:]
		} else {
			v.Field, v.Description, _ = strings.Cut(rest, ": ")
		}
		out[i] = v
	}
	return out
}

// sameSchema reports whether two schemas' texts are the same JSON but for
// white space (which protojson varies between builds, on purpose).
func sameSchema(a, b string) bool {
	var ca, cb bytes.Buffer
	if json.Compact(&ca, []byte(a)) != nil || json.Compact(&cb, []byte(b)) != nil {
		return a == b
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// RunSchemaCheck runs the schema check c (the job that starting it
// enqueued): it reads the tenant's users that are not deleted from one
// snapshot (UserStore.ExportUsers), checks each one's attributes against
// c.Schema, and records the counts and up to MaxSchemaCheckSamples
// violations in one transaction (RecordSchemaCheck). It changes no user.
// It is idempotent: a check that is done is not run again, and its first
// record stands. A tenant deleted before the check runs is checked as
// having no users; an operation gone with its purged tenant is not
// recorded.
func (s *Service) RunSchemaCheck(ctx context.Context, c SchemaCheck) error {
	if s.schemas == nil {
		return errors.New("schema check: this server does not check attribute schemas")
	}
	if op, err := s.store.GetOperation(ctx, c.Tenant, c.OperationID); err == nil && op.Done() {
		return nil // a job that ran again
	}
	var (
		checked, violating int
		samples            []RowFailure
	)
	err := s.store.ExportUsers(ctx, ListQuery{Tenant: c.Tenant}, func(u *User) error {
		index := checked
		checked++
		err := s.schemas.ValidateAttributes("attributes", c.Schema, u.Attributes)
		var ie *InvalidError
		if err == nil {
			return nil
		} else if !errors.As(err, &ie) {
			return err
		}
		violating++
		for _, v := range ie.Violations {
			if len(samples) == MaxSchemaCheckSamples {
				break
			}
			samples = append(samples, RowFailure{Index: index, Reason: schemaViolationReason(u.ID, v)})
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		checked, violating, samples, err = 0, 0, nil, nil
	}
	if err != nil {
		return err
	}
	err = s.store.RecordSchemaCheck(ctx, c.OperationID, checked, violating, samples)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
