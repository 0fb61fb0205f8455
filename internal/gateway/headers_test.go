package gateway

import "testing"

// TestHeaderMatcher: the headers the API defines become metadata; the
// permanent HTTP headers, Grpc-Metadata- headers and
// Grpc-Metadata-Authorization in particular do not (annotateContext passes
// keys in canonical form, and forwards Authorization itself).
func TestHeaderMatcher(t *testing.T) {
	for _, c := range []struct {
		header, md string
		ok         bool
	}{
		{"Idempotency-Key", "idempotency-key", true},
		{"If-Match", "if-match", true},
		{"Grpc-Metadata-Idempotency-Key", "", false},
		{"Grpc-Metadata-Authorization", "", false},
		{"User-Agent", "", false},
		{"Accept", "", false},
	} {
		md, ok := headerMatcher(c.header)
		if ok != c.ok || (ok && md != c.md) {
			t.Errorf("headerMatcher(%q) = %q, %v; want %q, %v", c.header, md, ok, c.md, c.ok)
		}
	}
}
