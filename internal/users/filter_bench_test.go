package users

import "testing"

// BenchmarkParseFilter measures the filter parser on filters of growing
// size, as ListUsers parses one on every call.
func BenchmarkParseFilter(b *testing.B) {
	for _, bc := range []struct{ name, filter string }{
		{"empty", ""},
		{"state", `state = "ACTIVE"`},
		{"email", `email = "Ada.Lovelace@Example.com"`},
		{"three", `state = "ACTIVE" AND display_name != "x" AND create_time > "2026-01-01T00:00:00Z"`},
		{"max", `state = ACTIVE AND email != "a@example.com" AND display_name = Ada AND create_time >= "2026-01-01T00:00:00Z" ` +
			`AND create_time < "2027-01-01T00:00:00Z" AND update_time > "2026-06-01T00:00:00Z" AND update_time <= "2026-12-31T23:59:59.999999Z" ` +
			`AND state != SUSPENDED AND email != "b@example.com" AND display_name != Bob AND email != "c@example.com" ` +
			`AND email != "d@example.com" AND email != "e@example.com" AND email != "f@example.com" AND email != "g@example.com" ` +
			`AND email != "h@example.com"`},
	} {
		if _, err := ParseFilter(bc.filter); err != nil {
			b.Fatalf("ParseFilter(%q) err = %v", bc.filter, err)
		}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseFilter(bc.filter); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParseOrderBy measures parsing ListUsers' order_by.
func BenchmarkParseOrderBy(b *testing.B) {
	for _, s := range []string{"", "email desc"} {
		b.Run("order="+s, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseOrderBy(s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
