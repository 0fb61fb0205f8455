package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/usersd/usersd/internal/telemetry"
)

func TestTraceConfig(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want telemetry.TraceConfig
	}{
		{
			name: "nothing set",
			want: telemetry.TraceConfig{ServiceVersion: "v1.2.3"},
		},
		{
			name: "everything general",
			env: map[string]string{
				"OTEL_SERVICE_NAME":           "users-eu",
				"OTEL_TRACES_EXPORTER":        "otlp",
				"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
				"OTEL_TRACES_SAMPLER":         "parentbased_traceidratio",
				"OTEL_TRACES_SAMPLER_ARG":     "0.25",
				"OTEL_RESOURCE_ATTRIBUTES":    "deployment.environment.name=prod",
			},
			want: telemetry.TraceConfig{
				ServiceName:        "users-eu",
				ServiceVersion:     "v1.2.3",
				Exporter:           "otlp",
				Protocol:           "grpc",
				Endpoint:           "http://collector:4317",
				Sampler:            "parentbased_traceidratio",
				SamplerArg:         "0.25",
				ResourceAttributes: "deployment.environment.name=prod",
			},
		},
		{
			name: "traces variables win",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL":        "grpc",
				"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
				"OTEL_EXPORTER_OTLP_ENDPOINT":        "http://general:4318",
				"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://traces.example.com/otlp",
			},
			want: telemetry.TraceConfig{
				ServiceVersion: "v1.2.3",
				Protocol:       "http/protobuf",
				Endpoint:       "https://traces.example.com/otlp", // as it is
			},
		},
		{
			name: "general endpoint over HTTP gets the traces path",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/base/",
			},
			want: telemetry.TraceConfig{
				ServiceVersion: "v1.2.3",
				Protocol:       "http/protobuf",
				Endpoint:       "http://collector:4318/base/v1/traces",
			},
		},
		{
			name: "general endpoint over gRPC is used as it is",
			env: map[string]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
			},
			want: telemetry.TraceConfig{
				ServiceVersion: "v1.2.3",
				Endpoint:       "https://collector:4317",
			},
		},
		{
			name: "SDK disabled",
			env: map[string]string{
				"OTEL_SDK_DISABLED":           "TRUE",
				"OTEL_TRACES_EXPORTER":        "otlp",
				"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
			},
			want: telemetry.TraceConfig{
				ServiceVersion: "v1.2.3",
				Exporter:       "none",
				Endpoint:       "http://collector:4317",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := traceConfig(func(k string) string { return tt.env[k] }, "v1.2.3")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("traceConfig(%v) mismatch (-want +got):\n%s", tt.env, diff)
			}
		})
	}
}
