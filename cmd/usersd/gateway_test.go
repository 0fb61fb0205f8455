package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// startGateway runs "usersd gateway --upstream upstream" in-process on
// 127.0.0.1:0 ports with the environment env and the flags args. It returns the gateway, as a
// testServer without gRPC, and a stop function that returns once run() has;
// stop is also called when the test ends.
func startGateway(t *testing.T, env map[string]string, upstream string, args ...string) (*testServer, func()) {
	t.Helper()
	return startCommand(t, env, append([]string{"usersd", "gateway", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--shutdown-delay", "0", "--upstream", upstream}, args...), "http", "admin")
}

// TestGateway serves the HTTP/JSON API from a gateway in front of a usersd
// replica, and checks that each request is one trace across both.
func TestGateway(t *testing.T) {
	addr, receiver := startReceiver(t)
	env := map[string]string{
		"OTEL_EXPORTER_OTLP_ENDPOINT": "http://" + addr,
		"OTEL_TRACES_SAMPLER":         "always_on",
	}
	replica, stopReplica := startServerEnv(t, env, "--database-url", "sqlite:"+filepath.Join(t.TempDir(), "usersd.db"))
	gw, stopGateway := startGateway(t, env, "static:///"+replica.GRPC)

	res, err := http.Get("http://" + gw.Admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "upstream: ok") {
		t.Errorf("gateway /readyz = %d %q, want 200 with upstream: ok", res.StatusCode, body)
	}

	created := gw.do(t, "POST", "/v1/users", `{"email":"gw@example.com","displayName":"Gateway"}`)
	created.wantStatus(t, http.StatusCreated)
	id, _ := created.Body["id"].(string)
	if loc := created.Header.Get("Location"); loc != "/v1/users/"+id {
		t.Errorf("Location = %q, want /v1/users/%s", loc, id)
	}
	const (
		traceID = "2cf7651916cd43dd8448eb211c80319e"
		caller  = "d7ad6b7169203333"
	)
	got := gw.do(t, "GET", "/v1/users/"+id, "", "traceparent", "00-"+traceID+"-"+caller+"-01")
	got.wantStatus(t, http.StatusOK)
	if got.Body["email"] != "gw@example.com" {
		t.Errorf("GET email = %v, want gw@example.com", got.Body["email"])
	}

	stopGateway()
	stopReplica() // both flush their spans
	for _, rpc := range []string{"/users.v1.UserService/CreateUser", "/users.v1.UserService/GetUser"} {
		if !strings.Contains(replica.logs.String(), `"rpc":"`+rpc+`"`) {
			t.Errorf("replica logged no gRPC request %s; logs:\n%s", rpc, replica.logs)
		}
	}

	const rpc = "users.v1.UserService/GetUser"
	tree := checkTree(t, receiver.trace(traceID), caller)
	httpSpan := tree.only(t, tracepb.Span_SPAN_KIND_SERVER, "GET /v1/users/{id}", caller)
	wantAttrs(t, httpSpan, map[string]string{"service.name": "usersd-gateway"}, resourceOf)
	clientSpan := tree.only(t, tracepb.Span_SPAN_KIND_CLIENT, rpc, httpSpan.SpanID)
	serverSpan := tree.only(t, tracepb.Span_SPAN_KIND_SERVER, rpc, clientSpan.SpanID)
	wantAttrs(t, serverSpan, map[string]string{"service.name": "usersd"}, resourceOf)
	tree.wantStore(t, serverSpan, "sqlite", id, "gw@example.com")
	t.Logf("trace:\n%s", tree)
}

func TestGatewayNeedsUpstream(t *testing.T) {
	err := run(context.Background(), []string{"usersd", "gateway", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"},
		func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "upstream") {
		t.Errorf("run(gateway) without --upstream = %v, want an error naming it", err)
	}
}
