package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/telemetry"
)

// OpenAPIHandler serves the OpenAPI 2 documents of the HTTP/JSON API, one
// per major version, at GET (and HEAD) /openapi/v1.json and
// /openapi/v2.json: application/json, cacheable for five minutes, with an
// ETag for revalidation. Other paths under it are 404, other methods 405.
// It records the path as the route of the request's telemetry.Call, so it
// is labelled in access logs, metrics and spans wherever it is mounted.
func OpenAPIHandler() http.Handler {
	mux := http.NewServeMux()
	for path, doc := range map[string]string{
		"/openapi/v1.json": usersv1.OpenAPI,
		"/openapi/v2.json": usersv2.OpenAPI,
	} {
		mux.Handle("GET "+path, openAPIDocument(path, doc))
	}
	return mux
}

// openAPIDocument serves doc, recording route on the request's Call.
func openAPIDocument(route, doc string) http.Handler {
	sum := sha256.Sum256([]byte(doc))
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		telemetry.CallFrom(r.Context()).SetRoute(route)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("ETag", etag)
		// ServeContent answers If-None-Match with 304, and Range requests.
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(doc))
	})
}
