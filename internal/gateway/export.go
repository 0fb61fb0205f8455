package gateway

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	usersv2 "github.com/usersd/usersd/api/users/v2"
	"github.com/usersd/usersd/internal/inproc"
)

// ExportUsers over HTTP. The RPC is server-streaming and has no
// google.api.http binding (grpc-gateway would wrap each message in
// {"result": …}); these routes answer with NDJSON instead:
//
//	GET /v2/tenants/{tenant}/users:export?filter=…&showDeleted=true
//	GET /v2/users:export  (the default tenant)
//
// 200 with Content-Type application/x-ndjson: one v2 User per line, in
// the JSON form of every other answer (the mux's marshaler's, which
// userJSON writes without its reflection), gzip-encoded when
// Accept-Encoding allows it. The handler calls ExportUsers over the
// connection the gateway has, like the generated routes do (the same
// header forwarding, the route recorded by the mux's middleware; over the
// in-process channel, it takes the handler's messages without copying
// them: inproc.Recv), and reads the first message before it writes
// anything: a call that fails before its first user (401, 403, 404 for a
// tenant that is not the caller's or does not exist, 400 for a malformed
// filter, 429, 503…) is answered as every other route's error. A failure
// after the first user can no longer change the status: the response is
// cut off (the connection closed without the end of the chunked body, or
// the HTTP/2 stream reset), so a client never takes a partial export for a
// whole one.

// exportRoutes are the path templates of ExportUsers, with the filter of
// the query parameters that may not set a field (those of the path), as
// the generated routes of ListUsers have.
var exportRoutes = []struct {
	template string
	filter   *utilities.DoubleArray
}{
	{"/v2/{parent=tenants/*}/users:export", utilities.NewDoubleArray([][]string{{"parent"}})},
	{"/v2/users:export", utilities.NewDoubleArray(nil)},
}

// ContentTypeNDJSON is the media type of an export.
const ContentTypeNDJSON = "application/x-ndjson"

// Buffering of an export's response.
const (
	// exportBuffer is the size of the writes to the connection.
	exportBuffer = 32 << 10
	// exportFlushEvery bounds how long a user read waits in the buffers
	// when the users come slowly (a filter that matches few).
	exportFlushEvery = 200 * time.Millisecond
)

// invalidArgument is the error of a request the handler cannot read, as
// the generated routes answer it.
func invalidArgument(err error) error { return status.Errorf(codes.InvalidArgument, "%v", err) }

// registerExport adds the routes of ExportUsers to mux, calling client.
func registerExport(mux *runtime.ServeMux, client usersv2.UserServiceClient) error {
	for _, r := range exportRoutes {
		if err := mux.HandlePath(http.MethodGet, r.template, exportHandler(mux, client, r.template, r.filter)); err != nil {
			return fmt.Errorf("route GET %s: %w", r.template, err)
		}
	}
	return nil
}

// exportHandler serves one route of ExportUsers.
func exportHandler(mux *runtime.ServeMux, client usersv2.UserServiceClient, template string, filter *utilities.DoubleArray) runtime.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		_, outbound := runtime.MarshalerForRequest(mux, r)
		fail := func(ctx context.Context, err error) { runtime.HTTPError(ctx, mux, outbound, w, r, err) }
		actx, err := runtime.AnnotateContext(ctx, mux, r, usersv2.UserService_ExportUsers_FullMethodName, runtime.WithHTTPPathPattern(template))
		if err != nil {
			fail(ctx, err)
			return
		}
		req := &usersv2.ExportUsersRequest{Parent: params["parent"]}
		if err := r.ParseForm(); err != nil {
			fail(actx, invalidArgument(err))
			return
		}
		if err := runtime.PopulateQueryParameters(req, r.Form, filter); err != nil {
			fail(actx, invalidArgument(err))
			return
		}

		stream, err := client.ExportUsers(actx, req)
		if err != nil {
			fail(actx, err)
			return
		}
		// Through the in-process channel, each user is the message the
		// handler sent, not a copy.
		recv := func() (*usersv2.User, error) { return inproc.Recv[usersv2.ExportUsersRequest](stream) }
		// Whatever ends the answer, the call ends before the handler
		// returns: nothing of it runs on after the request's line.
		defer func() {
			cancel()
			for {
				if _, err := recv(); err != nil {
					break
				}
			}
		}()
		first, err := recv()
		var md runtime.ServerMetadata
		md.HeaderMD, _ = stream.Header()
		actx = runtime.NewServerMetadataContext(actx, md)
		if err != nil && err != io.EOF {
			md.TrailerMD = stream.Trailer()
			fail(runtime.NewServerMetadataContext(actx, md), err)
			return
		}

		h := w.Header()
		for k, vs := range md.HeaderMD {
			if name, ok := outgoingHeaderMatcher(k); ok {
				for _, v := range vs {
					h.Add(name, v)
				}
			}
		}
		h.Set("Content-Type", ContentTypeNDJSON)
		h.Add("Vary", "Accept-Encoding")
		out := &exportWriter{w: w, rc: http.NewResponseController(w), writeTimeout: serverWriteTimeout(r)}
		buf := bufio.NewWriterSize(out, exportBuffer)
		var (
			body io.Writer = buf
			gz   *gzip.Writer
		)
		if acceptsGzip(r.Header.Values("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			gz = gzipWriters.Get().(*gzip.Writer)
			gz.Reset(buf)
			defer gzipWriters.Put(gz)
			body = gz
		}
		w.WriteHeader(http.StatusOK)
		flush := func() error {
			if gz != nil {
				if err := gz.Flush(); err != nil {
					return err
				}
			}
			if err := buf.Flush(); err != nil {
				return err
			}
			return out.flush()
		}
		if err == io.EOF {
			// No user matches: an empty body.
			if gz != nil {
				gz.Close()
			}
			buf.Flush()
			return
		}

		opts := protojson.MarshalOptions{EmitUnpopulated: true}
		if j, ok := outbound.(*runtime.JSONPb); ok {
			opts = j.MarshalOptions
		}
		// Each line is userJSON's where it writes as the marshaler does
		// (userjson.go), protojson's otherwise.
		enc := newUserJSON(opts)
		var line []byte
		u := first
		lastFlush := time.Now()
		for {
			ok := false
			if enc != nil {
				line, ok = enc.append(line[:0], u)
			}
			if !ok {
				if line, err = opts.MarshalAppend(line[:0], u); err != nil {
					break
				}
			}
			line = append(line, '\n')
			if _, err = body.Write(line); err != nil {
				return // the client went away
			}
			if u == first || time.Since(lastFlush) >= exportFlushEvery {
				// The first line goes out at once: the client sees the
				// export start.
				if err = flush(); err != nil {
					return
				}
				lastFlush = time.Now()
			}
			if u, err = recv(); err != nil {
				break
			}
		}
		if err != io.EOF {
			// The status is sent: cut the answer off.
			abort(w, flush)
			return
		}
		if gz != nil {
			if err := gz.Close(); err != nil {
				return
			}
		}
		if buf.Flush() == nil {
			out.flush()
		}
	}
}

// exportWriter writes an export's response, moving the connection's write
// deadline on before each write: an export lasts as long as its call's
// deadline allows (the request timeout, or the client's Grpc-Timeout),
// which may be longer than the server's WriteTimeout, sized for unary
// answers; so that timeout bounds each write instead of the whole answer.
type exportWriter struct {
	w            http.ResponseWriter
	rc           *http.ResponseController
	writeTimeout time.Duration
}

func (e *exportWriter) Write(p []byte) (int, error) {
	if e.writeTimeout > 0 {
		_ = e.rc.SetWriteDeadline(time.Now().Add(e.writeTimeout)) // ErrNotSupported: nothing to move
	}
	return e.w.Write(p)
}

func (e *exportWriter) flush() error {
	if err := e.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// serverWriteTimeout returns the WriteTimeout of the server of r, 0 when
// it has none or is unknown.
func serverWriteTimeout(r *http.Request) time.Duration {
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok {
		return srv.WriteTimeout
	}
	return 0
}

// abort cuts off a response whose status went out already. Over HTTP/1.x
// it sends what was written (flush) and closes the connection without the
// end of the chunked body: the handler returns normally, so the request
// has its access line. Where the connection cannot be taken over (HTTP/2),
// it panics with http.ErrAbortHandler, which resets the stream.
func abort(w http.ResponseWriter, flush func() error) {
	_ = flush()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	conn.Close()
}

var gzipWriters = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return gz
}}

// acceptsGzip reports whether the values of a request's Accept-Encoding
// header allow gzip (RFC 9110 section 12.5.3): "gzip" (or "x-gzip") with a
// quality above zero, or "*" above zero unless gzip is refused by name.
func acceptsGzip(values []string) bool {
	named, star := -1.0, -1.0
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(elem), ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				if k, val, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
					if err != nil || f < 0 || f > 1 {
						f = 0
					}
					q = f
				}
			}
			switch c := strings.ToLower(strings.TrimSpace(coding)); c {
			case "gzip", "x-gzip":
				named = max(named, q)
			case "*":
				star = max(star, q)
			}
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}
