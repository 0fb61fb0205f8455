package gateway_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/usersd/usersd/internal/gateway"
	"github.com/usersd/usersd/internal/grpcserver"
)

func TestV1SunsetHeaders(t *testing.T) {
	sunset := time.Date(2027, 6, 30, 0, 0, 0, 0, time.UTC)
	want := http.Header{
		"Deprecation": {"@1795478400"},
		"Sunset":      {"Wed, 30 Jun 2027 00:00:00 GMT"},
		"Link":        {`<` + grpcserver.MigrationGuide + `>; rel="deprecation", <` + grpcserver.MigrationGuide + `>; rel="sunset"`},
	}
	// The server behind the gateway announces the sunset in metadata too,
	// as a remote server would; the gateway must not echo it as
	// Grpc-Metadata-* headers.
	announced := newAPIGateway(t, gateway.Options{V1Sunset: sunset}, grpcserver.ChainConfig{Sunset: sunset})
	silent := newAPIGateway(t, gateway.Options{}, grpcserver.ChainConfig{})

	tests := []struct {
		name, method, path, accept string
		h                          http.Handler
		announced                  bool
	}{
		{"v1 path", "GET", "/v1/users", "", announced, true},
		{"v1 negotiated by default", "GET", "/users", "", announced, true},
		{"v1 negotiated", "GET", "/users", v1, announced, true},
		{"v1 error", "GET", "/v1/users/not-a-uuid", "", announced, true},
		{"v1 unknown route", "GET", "/v1/nothing", "", announced, true},
		{"v1 create", "POST", "/v1/users", "", announced, true},
		{"v2 path", "GET", "/v2/users", "", announced, false},
		{"v2 negotiated", "GET", "/users", v2, announced, false},
		{"not acceptable", "GET", "/users", "text/html", announced, false},
		{"no sunset set", "GET", "/v1/users", "", silent, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := ""
			if tc.method == "POST" {
				body = `{"email":"sunset@example.com","displayName":"Sunset"}`
			}
			w := call(t, tc.h, tc.method, tc.path, body, "Accept", tc.accept)
			for k, vs := range want {
				got := w.Header().Values(k)
				switch {
				case tc.announced && (len(got) != 1 || got[0] != vs[0]):
					t.Errorf("%s = %q, want %q", k, got, vs)
				case !tc.announced && len(got) > 0:
					t.Errorf("%s = %q, want none", k, got)
				}
				if got := w.Header().Values(http.CanonicalHeaderKey("Grpc-Metadata-" + k)); len(got) > 0 {
					t.Errorf("Grpc-Metadata-%s = %q, want none", k, got)
				}
			}
		})
	}
}
