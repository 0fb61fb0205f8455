package gateway

import (
	"net/http"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/grpcserver"
)

// announceV1Sunset adds the Deprecation (RFC 9745), Sunset (RFC 8594) and
// Link headers of grpcserver.V1Retirement to every response of a v1 route,
// errors included; it runs after negotiateVersion, so negotiated v1
// requests get them too. A zero sunset announces nothing.
func announceV1Sunset(sunset time.Time, next http.Handler) http.Handler {
	if sunset.IsZero() {
		return next
	}
	ret := grpcserver.V1Retirement(sunset)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == "/v1" || strings.HasPrefix(p, "/v1/") {
			h := w.Header()
			h.Set("Deprecation", ret.Deprecation)
			h.Set("Sunset", ret.Sunset)
			h.Add("Link", ret.Link)
		}
		next.ServeHTTP(w, r)
	})
}
