package telemetry_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"

	"github.com/usersd/usersd/internal/telemetry"
)

func TestHTTPTelemetryRecoversPanics(t *testing.T) {
	var buf bytes.Buffer
	h := telemetry.HTTPTelemetry(zerolog.New(&buf), newMetrics(t), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		telemetry.CallFrom(r.Context()).SetRoute("/v1/boom")
		panic("handler bug")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/boom", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", rec.Code)
	}
	if bytes.Contains(rec.Body.Bytes(), []byte("handler bug")) {
		t.Errorf("the client saw the panic: %s", rec.Body)
	}
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("want one JSON line, got %q", buf.String())
	}
	if line["level"] != "error" || line["route"] != "/v1/boom" || line["status"] != float64(500) ||
		line["error"] != "panic: handler bug" || line["stack"] == nil {
		t.Errorf("access line = %v", line)
	}
}

func TestHTTPTelemetryOneLinePerRequest(t *testing.T) {
	var buf bytes.Buffer
	h := telemetry.HTTPTelemetry(zerolog.New(&buf), newMetrics(t), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	}))
	for range 3 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil))
	}
	if n := bytes.Count(buf.Bytes(), []byte("\n")); n != 3 {
		t.Errorf("%d lines for 3 requests:\n%s", n, buf.String())
	}
	if !bytes.Contains(buf.Bytes(), []byte(`"route":"unmatched","status":418`)) {
		t.Errorf("lines lack route and status: %s", buf.String())
	}
}
