package gateway

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/usersd/usersd/internal/grpcserver"
)

// Media types of the API versions. On unversioned paths (/users, /users/…)
// the Accept header chooses among them and the response's Content-Type
// names the one chosen.
const (
	MediaTypeV1 = "application/vnd.usersd.v1+json"
	MediaTypeV2 = "application/vnd.usersd.v2+json"
)

// DefaultVersion is the version unversioned paths serve to requests that
// name none: no Accept header, or only application/json, application/* or
// */*. It is v1, the stable version, until v1 is retired.
const DefaultVersion = 1

// versions are the API versions served on unversioned paths.
var versions = []struct {
	n         int
	mediaType string
}{
	{1, MediaTypeV1},
	{2, MediaTypeV2},
}

// mediaType returns the media type of version v.
func mediaType(v int) string {
	for _, ver := range versions {
		if ver.n == v {
			return ver.mediaType
		}
	}
	return ""
}

// SupportedMediaTypes are the media types a 406 lists: one per version,
// then application/json for the default version.
var SupportedMediaTypes = []string{MediaTypeV1, MediaTypeV2, "application/json"}

// mediaRange is one element of an Accept header.
type mediaRange struct {
	typ, sub string // lower case; "*" is a wildcard
	q        float64
}

// Negotiate chooses the API version for the values of a request's Accept
// header fields, as RFC 9110 section 12.5.1 does:
//
//   - No Accept field, or only empty ones, accepts anything: DefaultVersion.
//   - Each version's quality is the q of the most specific range that
//     matches its media type: the vendor type itself, then application/json
//     (which matches DefaultVersion only), then application/*, then */*.
//     Media type parameters other than q are ignored. q defaults to 1;
//     q=0 means not acceptable.
//   - The version with the highest quality wins. On a tie a version named
//     by its vendor type beats one matched by application/json or a
//     wildcard; between two named versions the higher wins; between two
//     matched by wildcards, DefaultVersion.
//   - An element that is not a media range, or whose q is not a decimal
//     from 0 to 1, is ignored as if absent (".5" is tolerated).
//
// ok is false when no version is acceptable: the caller answers 406.
func Negotiate(accept []string) (version int, ok bool) {
	var ranges []mediaRange
	present := false
	for _, field := range accept {
		for _, elem := range splitList(field) {
			present = true
			if r, ok := parseRange(elem); ok {
				ranges = append(ranges, r)
			}
		}
	}
	if !present {
		return DefaultVersion, true
	}
	bestQ, bestRank := 0.0, -1
	for _, v := range versions {
		q, named := quality(ranges, v.n, v.mediaType)
		if q <= 0 {
			continue
		}
		// rank breaks ties: named versions by number, above DefaultVersion
		// matched by a wildcard, above other versions matched by one.
		rank := 0
		switch {
		case named:
			rank = 2 + v.n
		case v.n == DefaultVersion:
			rank = 1
		}
		if q > bestQ || (q == bestQ && rank > bestRank) {
			version, bestQ, bestRank = v.n, q, rank
		}
	}
	return version, version != 0
}

// quality returns the q that ranges give to version n of media type
// mediaType, from the most specific range that matches it (0 when none
// does), and whether that range is the media type itself.
func quality(ranges []mediaRange, n int, mediaType string) (q float64, named bool) {
	best := 0
	for _, r := range ranges {
		var s int
		switch full := r.typ + "/" + r.sub; {
		case full == mediaType:
			s = 4
		case full == "application/json" && n == DefaultVersion:
			s = 3
		case full == "application/*":
			s = 2
		case full == "*/*":
			s = 1
		}
		// Among equally specific ranges (the same type repeated) the most
		// accepting counts.
		if s > best || (s > 0 && s == best && r.q > q) {
			best, q = s, r.q
		}
	}
	return q, best == 4
}

// splitList splits a comma-separated field value into its trimmed,
// non-empty elements; commas in quoted strings do not split.
func splitList(v string) []string {
	var out []string
	start, quoted := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			out = appendTrimmed(out, v[start:i])
			start = i + 1
		}
	}
	return appendTrimmed(out, v[start:])
}

func appendTrimmed(out []string, s string) []string {
	if s = strings.TrimSpace(s); s != "" {
		out = append(out, s)
	}
	return out
}

// parseRange parses one media range with its parameters; ok is false when
// it is malformed.
func parseRange(elem string) (r mediaRange, ok bool) {
	mt, params, err := mime.ParseMediaType(elem)
	if err != nil {
		return r, false
	}
	typ, sub, found := strings.Cut(mt, "/")
	if !found || (typ == "*" && sub != "*") {
		return r, false
	}
	r = mediaRange{typ: typ, sub: sub, q: 1}
	if qs, set := params["q"]; set {
		if r.q, ok = parseQ(qs); !ok {
			return r, false
		}
	}
	return r, true
}

// parseQ parses a qvalue: digits with at most one '.', from 0 to 1.
func parseQ(s string) (float64, bool) {
	if s == "" || strings.Trim(s, "0123456789.") != "" || strings.Count(s, ".") > 1 {
		return 0, false
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil || q > 1 {
		return 0, false
	}
	return q, true
}

// unversioned reports whether path is a route of the API without its
// version prefix: /users, /users/{id}, /users/{id}:undelete,
// /users:batchGet, /users:import, /operations/{id}.
func unversioned(path string) bool {
	for _, collection := range []string{"/users", "/operations"} {
		if rest, ok := strings.CutPrefix(path, collection); ok && (rest == "" || rest[0] == '/' || rest[0] == ':') {
			return true
		}
	}
	return false
}

// negotiateVersion serves unversioned paths as the version the Accept
// header chooses: it prefixes the path with /v1 or /v2 before next routes
// it, answers with Content-Type naming the version's media type (errors
// too) and Vary: Accept, and answers 406 when no version is acceptable.
// Versioned paths pass untouched; their version is the path's.
func negotiateVersion(mux *runtime.ServeMux, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !unversioned(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Add("Vary", "Accept")
		v, ok := Negotiate(r.Header.Values("Accept"))
		if !ok {
			_, m := runtime.MarshalerForRequest(mux, r)
			runtime.HTTPError(r.Context(), mux, m, w, r, notAcceptable())
			return
		}
		prefix := "/v" + strconv.Itoa(v)
		r2 := new(http.Request)
		*r2 = *r
		u := *r.URL
		u.Path = prefix + u.Path
		if u.RawPath != "" {
			u.RawPath = prefix + u.RawPath
		}
		r2.URL = &u
		next.ServeHTTP(&typedWriter{ResponseWriter: w, mediaType: mediaType(v)}, r2)
	})
}

// notAcceptable is the error of a request that accepts no version. Its
// body is a google.rpc.Status like every other error, with the supported
// media types in the message and in an ErrorInfo (reason NOT_ACCEPTABLE).
func notAcceptable() error {
	list := strings.Join(SupportedMediaTypes, ", ")
	st := status.New(codes.InvalidArgument, "not acceptable: supported media types are "+list)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   "NOT_ACCEPTABLE",
		Domain:   grpcserver.ErrorDomain,
		Metadata: map[string]string{"supportedMediaTypes": list},
	}); err == nil {
		st = withInfo
	}
	return &runtime.HTTPStatusError{HTTPStatus: http.StatusNotAcceptable, Err: st.Err()}
}

// typedWriter replaces a JSON Content-Type with mediaType when the header
// is written.
type typedWriter struct {
	http.ResponseWriter
	mediaType string
	done      bool
}

func (w *typedWriter) setType() {
	if w.done {
		return
	}
	w.done = true
	h := w.Header()
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && mt == "application/json" {
		h.Set("Content-Type", w.mediaType)
	}
}

func (w *typedWriter) WriteHeader(code int) {
	w.setType()
	w.ResponseWriter.WriteHeader(code)
}

func (w *typedWriter) Write(p []byte) (int, error) {
	w.setType()
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *typedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
