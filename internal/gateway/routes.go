package gateway

import (
	"context"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// Route is one HTTP binding of an RPC: Method and the path Template of a
// google.api.http rule, like "GET" and "/v2/{name=users/*}".
type Route struct {
	Method   string
	Template string
	// RPC is the full name of the method, "/users.v2.UserService/GetUser".
	RPC string
}

// services are the gRPC services the handler routes, by full name.
var services = []string{usersv1.UserService_ServiceDesc.ServiceName, usersv2.UserService_ServiceDesc.ServiceName, usersv2.TenantService_ServiceDesc.ServiceName}

// Routes returns the HTTP routes of the API, v1 and v2, as the
// google.api.http annotations of the contract declare them (additional
// bindings included), in the order of the protos. They are the routes the
// generated gateway code registers; the OpenAPI documents are not among
// them.
func Routes() []Route {
	var out []Route
	for _, name := range services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			panic("gateway: service " + name + " is not registered: " + err.Error())
		}
		sd := d.(protoreflect.ServiceDescriptor)
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
			if rule == nil {
				continue // gRPC only, like WatchUserEvents
			}
			rpc := "/" + string(sd.FullName()) + "/" + string(md.Name())
			for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				if m, t := binding(r); m != "" {
					out = append(out, Route{Method: m, Template: t, RPC: rpc})
				}
			}
		}
	}
	return out
}

// binding returns the method and path template of one rule.
func binding(r *annotations.HttpRule) (method, template string) {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return http.MethodGet, p.Get
	case *annotations.HttpRule_Put:
		return http.MethodPut, p.Put
	case *annotations.HttpRule_Post:
		return http.MethodPost, p.Post
	case *annotations.HttpRule_Delete:
		return http.MethodDelete, p.Delete
	case *annotations.HttpRule_Patch:
		return http.MethodPatch, p.Patch
	case *annotations.HttpRule_Custom:
		return p.Custom.GetKind(), p.Custom.GetPath()
	}
	return "", ""
}

// newMux returns a grpc-gateway mux with the options every mux of the
// package has, then opts: the error handlers, routing errors with a 405
// and its Allow header (see routingErrors), and no path-length fallback, so
// a form-encoded POST to a GET route is a 405 rather than served as a GET,
// and X-HTTP-Method-Override cannot turn a POST into another method.
func newMux(opts ...runtime.ServeMuxOption) *runtime.ServeMux {
	return runtime.NewServeMux(append([]runtime.ServeMuxOption{
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrors(probeMethods(Routes()))),
		runtime.WithDisablePathLengthFallback(),
		// Outermost, so that a probing request runs no other middleware.
		runtime.WithMiddlewares(probeRoute),
	}, opts...)...)
}

// probeMethods returns the methods a 405's Allow header may list, in the
// order it lists them: GET and HEAD, which also serve the OpenAPI
// documents, the other standard methods, and any custom method of routes.
func probeMethods(routes []Route) []string {
	ms := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	for _, r := range routes {
		if !slices.Contains(ms, r.Method) {
			ms = append(ms, r.Method)
		}
	}
	return ms
}

type probeKey struct{}

// probe records whether a probing request matched a route.
type probe struct{ matched bool }

// probeRoute is the outermost middleware of the mux: a probing request
// (see allowedMethods) that reaches it has matched a route, and goes no
// further.
func probeRoute(next runtime.HandlerFunc) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		if p, ok := r.Context().Value(probeKey{}).(*probe); ok {
			p.matched = true
			return
		}
		next(w, r, params)
	}
}

// allowedMethods returns those of methods for which mux has a route that
// takes r's path. It asks the mux itself, with a bodiless copy of r per
// method that probeRoute stops before any handler runs, so the answer
// agrees with the mux's own matching (verbs, escaping, variables) by
// construction, for every route registered on it, generated or not. It
// runs only on the way to a 405.
func allowedMethods(mux *runtime.ServeMux, r *http.Request, methods []string) []string {
	var allow []string
	for _, m := range methods {
		p := &probe{}
		pr := r.Clone(context.WithValue(r.Context(), probeKey{}, p))
		pr.Method, pr.Body, pr.ContentLength = m, http.NoBody, 0
		mux.ServeHTTP(discardWriter{}, pr)
		if p.matched {
			allow = append(allow, m)
		}
	}
	return allow
}

// routingErrors returns the mux's answer to a request that no route takes,
// with a google.rpc.Status body like every other error: 404 (NOT_FOUND)
// when no route has its path; 405 with an Allow header that lists those of
// methods that have one when only its method is wrong (UNIMPLEMENTED in
// the body, as before, but never grpc-gateway's 501); 400 for a path that
// does not start with "/". A probing request gets nothing.
func routingErrors(methods []string) runtime.RoutingErrorHandlerFunc {
	return func(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
		if _, ok := ctx.Value(probeKey{}).(*probe); ok {
			return
		}
		var err error
		switch httpStatus {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", strings.Join(allowedMethods(mux, r, methods), ", "))
			err = &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Error(codes.Unimplemented, http.StatusText(httpStatus))}
		case http.StatusNotFound:
			err = status.Error(codes.NotFound, http.StatusText(httpStatus))
		default:
			err = &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Error(codes.InvalidArgument, http.StatusText(httpStatus))}
		}
		runtime.HTTPError(ctx, mux, m, w, r, err)
	}
}

// discardWriter is the response writer of probing requests.
type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}

var variable = regexp.MustCompile(`\{[^}=]+(?:=([^}]*))?\}`)

// Example returns a path that the route's template matches: each variable
// replaced by value, or, when the variable has a pattern ("{name=users/*}"),
// by the pattern with value for each wildcard ("users/<value>").
func (r Route) Example(value string) string {
	return variable.ReplaceAllStringFunc(r.Template, func(v string) string {
		pattern := variable.FindStringSubmatch(v)[1]
		if pattern == "" {
			return value
		}
		return strings.NewReplacer("**", value, "*", value).Replace(pattern)
	})
}
