package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/telemetry"
)

// OpenAPIHandler serves the OpenAPI 3.1 documents of the HTTP/JSON API,
// one per major version, at GET (and HEAD) /openapi/v1.json and
// /openapi/v2.json, with info.version set to version (the server's build;
// empty keeps the committed placeholder): application/json, cacheable for
// five minutes, with an
// ETag for revalidation. Other paths are 404, other methods 405 with an
// Allow header, both with a google.rpc.Status body as NewHandler's, which
// serves the documents too. It records the path as the route of the
// request's telemetry.Call, so it is labelled in access logs, metrics and
// spans wherever it is mounted.
func OpenAPIHandler(version string) http.Handler {
	mux := newMux()
	if err := registerOpenAPI(mux, version); err != nil {
		panic(err) // the paths are constants
	}
	return mux
}

// registerOpenAPI adds the routes of the OpenAPI documents to mux.
func registerOpenAPI(mux *runtime.ServeMux, version string) error {
	for _, d := range []struct{ path, doc string }{
		{"/openapi/v1.json", usersv1.OpenAPI},
		{"/openapi/v2.json", usersv2.OpenAPI},
	} {
		h := openAPIDocument(d.path, servedVersion(d.doc, version))
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if err := mux.HandlePath(method, d.path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
				h.ServeHTTP(w, r)
			}); err != nil {
				return fmt.Errorf("route %s %s: %w", method, d.path, err)
			}
		}
	}
	return nil
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

// openAPIVersionPlaceholder is info.version in the committed documents
// (internal/openapidoc writes them).
const openAPIVersionPlaceholder = "0.0.0-dev"

// servedVersion returns doc with info.version set to version, or doc when
// version is empty.
func servedVersion(doc, version string) string {
	if version == "" {
		return doc
	}
	q, _ := json.Marshal(version) // a string always marshals
	return strings.Replace(doc, `"version": "`+openAPIVersionPlaceholder+`"`, `"version": `+string(q), 1)
}
