package users

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFilter(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want Filter
	}{
		{"empty", "", nil},
		{"blank", "  \t", nil},
		{"state quoted", `state = "ACTIVE"`, Filter{{FieldState, OpEq, StateActive}}},
		{"state bare prefixed", `state!=STATE_SUSPENDED`, Filter{{FieldState, OpNe, StateSuspended}}},
		{"state lower case", `state = "deleted"`, Filter{{FieldState, OpEq, StateDeleted}}},
		{"email folds case", `email = "Ada@Example.COM"`, Filter{{FieldEmail, OpEq, "ada@example.com"}}},
		{"email bare", `email=ada@example.com`, Filter{{FieldEmail, OpEq, "ada@example.com"}}},
		{"display name escapes", `display_name = "Ada \"The\" Count \\ 1"`, Filter{{FieldDisplayName, OpEq, `Ada "The" Count \ 1`}}},
		{"camel case", `displayName = "x" AND createTime < "2026-01-02T03:04:05Z"`,
			Filter{{FieldDisplayName, OpEq, "x"}, {FieldCreateTime, OpLt, ts}}},
		{"time ops", `create_time > "2026-01-02T03:04:05Z" AND create_time <= "2026-01-02T04:04:05+01:00" AND update_time >= 2026-01-02T03:04:05Z`,
			Filter{{FieldCreateTime, OpGt, ts}, {FieldCreateTime, OpLe, ts}, {FieldUpdateTime, OpGe, ts}}},
		{"sub-microsecond less", `create_time < "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldCreateTime, OpLe, ts.Add(time.Microsecond)}}},
		{"sub-microsecond at least", `create_time >= "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldCreateTime, OpGt, ts.Add(time.Microsecond)}}},
		{"sub-microsecond equal matches nothing", `create_time = "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldCreateTime, OpLt, ts.Add(time.Microsecond)}, {FieldCreateTime, OpGt, ts.Add(time.Microsecond)}}},
		{"sub-microsecond not equal matches all", `state = "ACTIVE" AND create_time != "2026-01-02T03:04:05.0000019Z"`,
			Filter{{FieldState, OpEq, StateActive}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilter(tt.in)
			if err != nil {
				t.Fatalf("ParseFilter(%q) err = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFilter(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseFilterErrors(t *testing.T) {
	tests := []struct{ in, wantMsg string }{
		{`name = "x"`, `unknown field "name"`},
		{`state`, "expected a comparison operator"},
		{`state =`, "expected a value"},
		{`state == "ACTIVE"`, `unknown operator "=="`},
		{`state = "GONE"`, `unknown state "GONE"`},
		{`state > "ACTIVE"`, "allows only = and !="},
		{`email < "a"`, "allows only = and !="},
		{`create_time > "yesterday"`, "RFC 3339"},
		{`state = "ACTIVE" OR state = "SUSPENDED"`, `expected AND, found "OR"`},
		{`state = "ACTIVE" and email = "a@b"`, `expected AND, found "and"`},
		{`state = "ACTIVE" AND`, "expected a field name"},
		{`email = "unterminated`, "unterminated string"},
		{`email = "bad \n escape"`, "escapes"},
		{`(state = "ACTIVE")`, "expected a field name"},
		{`state = "ACTIVE"; DROP TABLE users`, "expected AND"},
		{strings.Repeat(`state = "ACTIVE" AND `, MaxFilterConditions) + `state = "ACTIVE"`, "more than 16 comparisons"},
	}
	for _, tt := range tests {
		_, err := ParseFilter(tt.in)
		var inv *InvalidError
		if !errors.As(err, &inv) || inv.Violations[0].Field != "filter" {
			t.Errorf("ParseFilter(%q) err = %v, want an InvalidError on filter", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ParseFilter(%q) err = %q, want it to mention %q", tt.in, err, tt.wantMsg)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		``, `state = "ACTIVE"`, `email = "a@b.c" AND create_time > "2026-01-02T03:04:05Z"`,
		`display_name != "x \" y"`, `update_time<=2026-01-02T03:04:05.999999999+05:30`, `state = "`, `AND AND`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFilter(s)
		if err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Violations[0].Field != "filter" {
				t.Fatalf("ParseFilter(%q) err = %v, not an InvalidError on filter", s, err)
			}
			return
		}
		if len(got) > 2*MaxFilterConditions {
			t.Fatalf("ParseFilter(%q) = %d conditions", s, len(got))
		}
		for _, c := range got {
			switch c.Field {
			case FieldState:
				if _, ok := c.Value.(State); !ok || (c.Op != OpEq && c.Op != OpNe) {
					t.Fatalf("ParseFilter(%q): bad state condition %+v", s, c)
				}
			case FieldEmail, FieldDisplayName:
				if _, ok := c.Value.(string); !ok || (c.Op != OpEq && c.Op != OpNe) {
					t.Fatalf("ParseFilter(%q): bad string condition %+v", s, c)
				}
			case FieldCreateTime, FieldUpdateTime:
				if _, ok := c.Value.(time.Time); !ok {
					t.Fatalf("ParseFilter(%q): bad time condition %+v", s, c)
				}
			default:
				t.Fatalf("ParseFilter(%q): unknown field in %+v", s, c)
			}
		}
	})
}

func TestParseOrderBy(t *testing.T) {
	tests := []struct {
		in      string
		want    Order
		wantErr bool
	}{
		{"", Order{}, false},
		{"create_time", Order{}, false},
		{"createTime desc", Order{Desc: true}, false},
		{"email", Order{Field: OrderEmail}, false},
		{"  email   DESC ", Order{Field: OrderEmail, Desc: true}, false},
		{"email asc", Order{Field: OrderEmail}, false},
		{"display_name", Order{}, true},
		{"email sideways", Order{}, true},
		{"email desc extra", Order{}, true},
	}
	for _, tt := range tests {
		got, err := ParseOrderBy(tt.in)
		if tt.wantErr {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Violations[0].Field != "order_by" {
				t.Errorf("ParseOrderBy(%q) err = %v, want an InvalidError on order_by", tt.in, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseOrderBy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
