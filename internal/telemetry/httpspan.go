package telemetry

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// The HTTP server span is HTTPTelemetry's own rather than otelhttp's: the
// edge already holds the one response recorder, the Call with the route
// and the RPC, and the outcome, so it records the span's attributes in one
// call when the request is done, instead of otelhttp's second response
// wrapper, its metrics (on a meter that records nothing here) and an
// attribute slice the SDK copies and regrows three times
// (docs/performance.md, "The request path, fourth pass"). The span is the
// one the HTTP semantic conventions (semconv v1.43.0) describe, attribute
// for attribute as otelhttp v0.72 made it, which
// internal/telemetry/testdata/http_telemetry.json holds.

// tracerName is the instrumentation scope of the HTTP server spans.
const tracerName = "github.com/usersd/usersd/internal/telemetry"

// spanName is a server span's name before the route is known: the
// method, or "HTTP" for a method the conventions do not list.
func spanName(method string) string {
	if m := strings.ToUpper(method); knownMethods[m].Valid() {
		return m
	}
	return "HTTP"
}

var knownMethods = map[string]attribute.KeyValue{
	http.MethodConnect: semconv.HTTPRequestMethodConnect,
	http.MethodDelete:  semconv.HTTPRequestMethodDelete,
	http.MethodGet:     semconv.HTTPRequestMethodGet,
	http.MethodHead:    semconv.HTTPRequestMethodHead,
	http.MethodOptions: semconv.HTTPRequestMethodOptions,
	http.MethodPatch:   semconv.HTTPRequestMethodPatch,
	http.MethodPost:    semconv.HTTPRequestMethodPost,
	http.MethodPut:     semconv.HTTPRequestMethodPut,
	http.MethodTrace:   semconv.HTTPRequestMethodTrace,
}

// requestAttrs appends the attributes of the request r to attrs, in the
// conventions' order: server, method, scheme, peer, user agent, client,
// path, protocol.
func requestAttrs(attrs []attribute.KeyValue, r *http.Request) []attribute.KeyValue {
	host, port := splitHostPort(r.Host)
	attrs = append(attrs, semconv.ServerAddress(host))
	method, known := knownMethods[r.Method]
	if !known {
		if m, ok := knownMethods[strings.ToUpper(r.Method)]; ok {
			method = m
		} else {
			method = semconv.HTTPRequestMethodOther
		}
	}
	attrs = append(attrs, method)
	if r.TLS != nil {
		attrs = append(attrs, semconv.URLScheme("https"))
		if port == 443 {
			port = -1
		}
	} else {
		attrs = append(attrs, semconv.URLScheme("http"))
		if port == 80 {
			port = -1
		}
	}
	if port > 0 {
		attrs = append(attrs, semconv.ServerPort(port))
	}
	if !known && r.Method != "" {
		attrs = append(attrs, semconv.HTTPRequestMethodOriginal(r.Method))
	}
	peer, peerPort := splitHostPort(r.RemoteAddr)
	if peer != "" {
		attrs = append(attrs, semconv.NetworkPeerAddress(peer))
		if peerPort > 0 {
			attrs = append(attrs, semconv.NetworkPeerPort(peerPort))
		}
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	client, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
	if client == "" {
		client = peer
	}
	if client != "" {
		attrs = append(attrs, semconv.ClientAddress(client))
	}
	if r.URL != nil && r.URL.Path != "" {
		attrs = append(attrs, semconv.URLPath(r.URL.Path))
	}
	name, version, _ := strings.Cut(r.Proto, "/")
	if name = strings.ToLower(name); name != "" && name != "http" {
		attrs = append(attrs, semconv.NetworkProtocolName(name))
	}
	if version != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(version))
	}
	return attrs
}

// splitHostPort splits "host:port", "[v6]:port", "host" or "[v6]"; the
// port is -1 when there is none or it is not a number.
func splitHostPort(hostport string) (string, int) {
	if host, port, err := net.SplitHostPort(hostport); err == nil {
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return host, -1
		}
		return host, int(p)
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), -1
}

// endSpan records on span what the request r came to and ends it: the
// request's attributes, the route's and the RPC's (when the gateway
// matched one and next returned), the bytes read and written, and the
// status, which is an error from 500 on; a status of 0 means the request
// has no outcome (it was aborted). A span that is not recording is only
// ended.
func endSpan(span trace.Span, r *http.Request, route string, call *Call, read, written int64, status int) {
	if !span.IsRecording() {
		span.End()
		return
	}
	// The SDK copies the attributes it is given, so their slice is reused.
	buf := attrPool.Get().(*[]attribute.KeyValue)
	defer func() {
		clear(*buf)
		attrPool.Put(buf)
	}()
	attrs := requestAttrs((*buf)[:0], r)
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
		if rpc, code, _, ok := call.RPC(); ok {
			attrs = append(attrs, semconv.RPCSystemNameGRPC,
				semconv.RPCMethod(strings.TrimPrefix(rpc, "/")), semconv.RPCResponseStatusCode(code.String()))
		}
		span.SetName(r.Method + " " + route)
	}
	if read > 0 {
		attrs = append(attrs, semconv.HTTPRequestBodySize(int(read)))
	}
	if written > 0 {
		attrs = append(attrs, semconv.HTTPResponseBodySize(int(written)))
	}
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	span.SetAttributes(attrs...)
	*buf = attrs
	switch {
	case status == 0:
	case status < 100 || status >= 600:
		span.SetStatus(codes.Error, fmt.Sprintf("Invalid HTTP status code %d", status))
	case status >= 500:
		span.SetStatus(codes.Error, "")
	}
	span.End()
}

// attrPool holds the attribute slices of endSpan.
var attrPool = sync.Pool{New: func() any {
	s := make([]attribute.KeyValue, 0, 20)
	return &s
}}

// countingBody counts the bytes read from a request's body.
type countingBody struct {
	io.ReadCloser
	n int64
}

// count is the bytes read so far; none for a nil body (a request whose
// span is not recording has no counter).
func (b *countingBody) count() int64 {
	if b == nil {
		return 0
	}
	return b.n
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}
