package scim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/usersd/usersd/internal/telemetry"
	"github.com/usersd/usersd/internal/users"
)

// Prefix is the path under which the handler serves: a tenant's SCIM
// service is Prefix + "/tenants/{tenant}" (its base URL, the one an
// identity provider is given).
const Prefix = "/scim/v2"

// Bounds of the handler's answers.
const (
	// DefaultCount is the page size of a query that gives no count.
	DefaultCount = 100
	// MaxCount is the largest page a query gets (ServiceProviderConfig's
	// filter.maxResults); a larger count is lowered to it.
	MaxCount = 200
	// MaxScan bounds the resources one query reads: to reach its
	// startIndex, and, when the filter's index part does not select the
	// matches exactly (or for groups, which the service does not count),
	// to count totalResults. A query that would read more is a 400
	// tooMany: narrow the filter. It is the users service's bound on
	// exact counts (users.MaxExactTotal).
	MaxScan = users.MaxExactTotal
	// MaxMembersShown bounds the members a group's answer lists (a GET of
	// the group, or a query that asks for members): one page of
	// ListGroupMembers. A larger group is listed in part; identity
	// providers change members by PATCH and ask for groups without them
	// (excludedAttributes=members).
	MaxMembersShown = users.MaxMemberPageSize
	// maxPatchRetries bounds the reads and applications of a PATCH without
	// If-Match that meets changes made in between.
	maxPatchRetries = 3
)

// Authenticator authenticates a SCIM request to a tenant's service. It
// returns the request's context, carrying the caller and bound to the
// tenant (users.BindTenant), or an error: an *Error, or an error with a
// method StatusCode() int (401, 403 or 404) and optionally Challenge()
// string (the WWW-Authenticate value of a 401 or 403). A caller of
// another tenant is a 404, never a 403: the answer must not tell whether
// the tenant exists.
type Authenticator interface {
	Authenticate(r *http.Request, tenant string) (context.Context, error)
}

// Options configures the handler.
type Options struct {
	// MaxBodyBytes bounds request bodies; 0, or more than MaxBodyBytes,
	// means MaxBodyBytes. A longer body is a 413.
	MaxBodyBytes int64
	// PublicURL, when set, is the scheme and host of the base URLs in
	// answers (meta.location, Location): "https://users.example.com".
	// Otherwise they are made from the request (its Host, and https when
	// it came over TLS or X-Forwarded-Proto says https).
	PublicURL string
}

// handler serves SCIM 2.0 for every tenant of svc.
type handler struct {
	svc     *users.Service
	authn   Authenticator
	maxBody int64
	public  string
}

// NewHandler returns the handler of SCIM 2.0 (RFC 7644) under
// Prefix + "/tenants/{tenant}/": Users, Groups, their queries
// (.search), ServiceProviderConfig, ResourceTypes and Schemas. docs/scim.md
// describes what it serves.
//
// With a nil authn, requests are not authenticated: the server's
// --auth=none mode, for development, in which the whole API is open (the
// server warns when it listens beyond loopback). Each request is then
// bound to the tenant of its URL.
func NewHandler(svc *users.Service, authn Authenticator, opts Options) http.Handler {
	h := &handler{svc: svc, authn: authn, maxBody: opts.MaxBodyBytes, public: strings.TrimRight(opts.PublicURL, "/")}
	if h.maxBody <= 0 || h.maxBody > MaxBodyBytes {
		h.maxBody = MaxBodyBytes
	}
	mux := http.NewServeMux()
	t := Prefix + "/tenants/{tenant}"
	route := func(method, path string, fn func(*request) error) {
		pattern := t + path
		mux.Handle(method+" "+pattern, h.endpoint(pattern, fn))
	}
	route("GET", "/ServiceProviderConfig", h.serviceProviderConfig)
	route("GET", "/ResourceTypes", h.resourceTypes)
	route("GET", "/ResourceTypes/{name}", h.resourceType)
	route("GET", "/Schemas", h.schemas)
	route("GET", "/Schemas/{urn}", h.schema)

	route("POST", "/Users", h.createUser)
	route("GET", "/Users", h.listUsers)
	route("POST", "/Users/.search", h.searchUsers)
	route("GET", "/Users/{id}", h.getUser)
	route("PUT", "/Users/{id}", h.replaceUser)
	route("PATCH", "/Users/{id}", h.patchUser)
	route("DELETE", "/Users/{id}", h.deleteUser)

	route("POST", "/Groups", h.createGroup)
	route("GET", "/Groups", h.listGroups)
	route("POST", "/Groups/.search", h.searchGroups)
	route("GET", "/Groups/{id}", h.getGroup)
	route("PUT", "/Groups/{id}", h.replaceGroup)
	route("PATCH", "/Groups/{id}", h.patchGroup)
	route("DELETE", "/Groups/{id}", h.deleteGroup)

	// Whatever else is under the prefix is a SCIM 404, not net/http's
	// text (a method another route serves included).
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		telemetry.CallFrom(r.Context()).SetRoute(Prefix + "/")
		writeError(w, r, &Error{Status: http.StatusNotFound, Detail: "no SCIM endpoint " + r.Method + " " + r.URL.Path})
	})
	return mux
}

// request is one authenticated request to a tenant's service.
type request struct {
	ctx    context.Context
	w      http.ResponseWriter
	r      *http.Request
	tenant string
	// base is the tenant's SCIM base URL, for meta.location.
	base string
}

// endpoint returns the http.Handler of one route: it records the route,
// authenticates, checks that the tenant exists and runs fn, rendering its
// error.
func (h *handler) endpoint(pattern string, fn func(*request) error) http.Handler {
	route := pattern
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		telemetry.CallFrom(r.Context()).SetRoute(route)
		tenant := r.PathValue("tenant")
		ctx, err := h.authenticate(r, tenant)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if err := h.checkTenant(ctx, tenant); err != nil {
			writeError(w, r, err)
			return
		}
		req := &request{ctx: ctx, w: w, r: r.WithContext(ctx), tenant: tenant, base: h.baseURL(r, tenant)}
		if err := run(fn, req); err != nil {
			writeError(w, r, err)
		}
	})
}

// run calls fn, a panic of which becomes an error with its stack (a 500
// whose cause the access log records), as the gRPC chain's recovery does
// for the API's calls: one bad request does not take the connection down.
func run(fn func(*request) error, req *request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return fn(req)
}

// authenticate runs the Authenticator, or binds the request to its tenant
// when there is none (--auth=none).
func (h *handler) authenticate(r *http.Request, tenant string) (context.Context, error) {
	if h.authn == nil {
		return users.BindTenant(r.Context(), tenant), nil
	}
	ctx, err := h.authn.Authenticate(r, tenant)
	if err == nil {
		return ctx, nil
	}
	var se *Error
	if errors.As(err, &se) {
		return nil, se
	}
	var coded interface{ StatusCode() int }
	if errors.As(err, &coded) {
		e := &Error{Status: coded.StatusCode(), Detail: err.Error(), Err: err}
		if e.Status == http.StatusNotFound {
			e.Detail = "resource not found"
		}
		return nil, &authError{err: e, challenge: challengeOf(err)}
	}
	return nil, FromError(err)
}

// authError is a refused authentication, with its WWW-Authenticate value.
type authError struct {
	err       *Error
	challenge string
}

func (e *authError) Error() string { return e.err.Error() }
func (e *authError) Unwrap() error { return e.err }

func challengeOf(err error) string {
	var c interface{ Challenge() string }
	if errors.As(err, &c) {
		return c.Challenge()
	}
	return ""
}

// checkTenant fails with a 404 unless the tenant exists and is not
// deleted.
func (h *handler) checkTenant(ctx context.Context, tenant string) error {
	t, err := h.svc.GetTenant(ctx, tenant)
	var inv *users.InvalidError
	switch {
	case errors.As(err, &inv), errors.Is(err, users.ErrNotFound):
		return &Error{Status: http.StatusNotFound, Detail: "resource not found", Err: err}
	case err != nil:
		return FromError(err)
	case t.State == users.StateDeleted:
		return &Error{Status: http.StatusNotFound, Detail: "resource not found"}
	}
	return nil
}

// baseURL is the tenant's SCIM base URL as the client reached it.
func (h *handler) baseURL(r *http.Request, tenant string) string {
	origin := h.public
	if origin == "" {
		scheme := "http"
		if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return origin + Prefix + "/tenants/" + tenant
}

// writeError renders err as a SCIM error, with Retry-After and, for a
// refused authentication, WWW-Authenticate. The cause of a 500 or 503 goes
// to the access log.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *authError
	challenge := ""
	if errors.As(err, &ae) {
		challenge = ae.challenge
	}
	e := FromError(err)
	if e.Status == http.StatusUnauthorized {
		if challenge == "" {
			challenge = `Bearer realm="usersd"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	} else if e.Status == http.StatusForbidden && challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if s := e.RetryAfterSeconds(); s > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(s))
	}
	if e.Status >= 500 && e.Err != nil {
		telemetry.CallFrom(r.Context()).SetCause(e.Err)
	}
	writeJSON(w, e.Status, e)
}

// writeJSON writes v as the answer's body with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only a bug: every answer is made of strings and maps.
		status = http.StatusInternalServerError
		body, _ = json.Marshal(&Error{Status: status, Detail: "internal error"})
	}
	w.Header().Set("Content-Type", MediaType+"; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeResource writes a resource with its ETag (its meta.version).
func (q *request) writeResource(status int, v any, meta *Meta, p *projection) error {
	if meta != nil && meta.Version != "" {
		q.w.Header().Set("ETag", meta.Version)
	}
	if status == http.StatusCreated && meta != nil && meta.Location != "" {
		q.w.Header().Set("Location", meta.Location)
	}
	out, err := p.apply(v)
	if err != nil {
		return err
	}
	writeJSON(q.w, status, out)
	return nil
}

// body reads the request's body: at most the handler's bound (413 beyond),
// of a JSON media type (application/scim+json or application/json; none
// given is taken as JSON).
func (h *handler) body(q *request) ([]byte, error) {
	if ct := q.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != MediaType && mt != "application/json") {
			return nil, &Error{Status: http.StatusUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %q: send %s or application/json", ct, MediaType)}
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(q.w, q.r.Body, h.maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the body is longer than %d bytes", h.maxBody)}
	case err != nil:
		return nil, &Error{Status: http.StatusBadRequest, ScimType: TypeInvalidSyntax, Detail: "the body could not be read", Err: err}
	}
	return b, nil
}

// ifMatch returns the etag of the request's If-Match header, as the
// service takes it: "" when there is none or it is "*" (any version).
func ifMatch(r *http.Request) (etag string, given bool) {
	v := strings.TrimSpace(r.Header.Get("If-Match"))
	if v == "" || v == "*" {
		return "", false
	}
	return normalizeEtag(v), true
}

// normalizeEtag returns the opaque etag of an entity tag: W/"x", "x" and x
// are x.
func normalizeEtag(v string) string {
	v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
	return strings.Trim(v, `"`)
}

// preconditionFailed is the 412 of an If-Match that names another
// version.
func preconditionFailed() *Error {
	return FromError(users.ErrEtagMismatch)
}
