package users

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSchemaViolationRoundTrip shows that a violation of a schema check
// reads back from its stored reason as it was, whatever the attributes'
// keys and the description hold.
func TestSchemaViolationRoundTrip(t *testing.T) {
	const user = "0194d0a0-0000-7000-8000-000000000001"
	var want []SchemaViolation
	op := &Operation{Kind: OperationSchemaCheck}
	for i, v := range []FieldViolation{
		{Field: "attributes", Description: "missing property 'level'"},
		{Field: "attributes/level", Description: "maximum: got 11, want 10"},
		{Field: "attributes/a: b/c", Description: "type: got string, want integer"},
		{Field: `attributes/"quoted"`, Description: `const: want "x"`},
		{Field: "attributes/ü~1", Description: ""},
	} {
		op.Failures = append(op.Failures, RowFailure{Index: i, Reason: schemaViolationReason(user, v)})
		want = append(want, SchemaViolation{Index: i, User: user, Field: v.Field, Description: v.Description})
	}
	if op.Failures[1].Reason != user+": attributes/level: maximum: got 11, want 10" {
		t.Errorf("reason %q, want the plain form", op.Failures[1].Reason)
	}
	if diff := cmp.Diff(want, op.SchemaViolations()); diff != "" {
		t.Errorf("SchemaViolations (-want +got):\n%s", diff)
	}
}

// TestSameSchema shows which schema texts count as the same schema: the
// same JSON but for white space.
func TestSameSchema(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{`{"type":"object"}`, `{ "type" : "object" }`, true},
		{`{"type":"object"}`, `{"type":"object","required":["a"]}`, false},
		{`{"a":1,"b":2}`, `{"b":2,"a":1}`, false}, // protojson sorts keys: not met
		{`not json`, `not json`, true},
		{``, `{"type":"object"}`, false},
	} {
		if got := sameSchema(tt.a, tt.b); got != tt.want {
			t.Errorf("sameSchema(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}
