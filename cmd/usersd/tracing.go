package main

import (
	"net/url"
	"strings"

	"github.com/usersd/usersd/internal/telemetry"
)

// traceConfig reads the tracing setup from the standard OpenTelemetry
// environment variables. A signal-specific variable (OTEL_EXPORTER_OTLP_TRACES_*)
// wins over the general one. OTEL_SDK_DISABLED=true turns exporting off;
// spans are still made, so that logs keep their trace ids.
//
// The general OTEL_EXPORTER_OTLP_ENDPOINT is a base URL: over
// http/protobuf, spans go to its path /v1/traces. The signal-specific
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is.
func traceConfig(getenv func(string) string, version string) telemetry.TraceConfig {
	env := func(names ...string) string {
		for _, n := range names {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				return v
			}
		}
		return ""
	}
	cfg := telemetry.TraceConfig{
		ServiceName:        env("OTEL_SERVICE_NAME"),
		ServiceVersion:     version,
		Exporter:           env("OTEL_TRACES_EXPORTER"),
		Protocol:           env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"),
		Endpoint:           env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
		Sampler:            env("OTEL_TRACES_SAMPLER"),
		SamplerArg:         env("OTEL_TRACES_SAMPLER_ARG"),
		ResourceAttributes: env("OTEL_RESOURCE_ATTRIBUTES"),
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
		if cfg.Endpoint != "" && strings.EqualFold(cfg.Protocol, "http/protobuf") {
			// An unparseable URL is left as it is, for
			// telemetry.NewTracerProvider to report.
			if u, err := url.Parse(cfg.Endpoint); err == nil {
				cfg.Endpoint = u.JoinPath("v1", "traces").String()
			}
		}
	}
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		cfg.Exporter = "none"
	}
	return cfg
}
