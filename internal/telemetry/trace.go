package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// TraceConfig is the tracing setup, read from the standard OTEL_* variables
// by cmd/usersd. Values are matched case-insensitively.
type TraceConfig struct {
	// ServiceName is OTEL_SERVICE_NAME. When empty, the service.name in
	// ResourceAttributes is used, else "usersd".
	ServiceName string
	// ServiceVersion is the build's version, the default service.version;
	// a service.version in ResourceAttributes wins.
	ServiceVersion string
	// Exporter is OTEL_TRACES_EXPORTER: "otlp" or "none". Empty means otlp
	// when Endpoint is set, else none.
	Exporter string
	// Protocol is OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or
	// OTEL_EXPORTER_OTLP_PROTOCOL: "grpc" (the default) or "http/protobuf".
	Protocol string
	// Endpoint is the http:// or https:// URL spans are sent to, from
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT. For
	// http/protobuf it is the whole URL, path included (…/v1/traces); for
	// grpc the path is ignored. https means TLS. Empty with Exporter "otlp"
	// means the local collector: http://localhost:4317 (grpc) or
	// http://localhost:4318/v1/traces (http/protobuf).
	Endpoint string
	// Sampler is OTEL_TRACES_SAMPLER: always_on, always_off, traceidratio,
	// parentbased_always_on (the default), parentbased_always_off or
	// parentbased_traceidratio.
	Sampler string
	// SamplerArg is OTEL_TRACES_SAMPLER_ARG: the ratio, from 0 to 1, of the
	// traceidratio samplers; empty means 1.
	SamplerArg string
	// ResourceAttributes is OTEL_RESOURCE_ATTRIBUTES: key=value pairs
	// separated by commas, values percent-encoded.
	ResourceAttributes string
}

// NewTracerProvider returns an SDK tracer provider configured by cfg. It
// always returns one, so that every request has a trace id for the logs,
// but it exports spans, through a batch span processor, only when cfg
// names an exporter. The caller must Shutdown the provider, which flushes
// the spans not yet exported. An invalid setting is an error that names its
// variable.
//
// Every setting in cfg is passed to the SDK explicitly, so the SDK's own
// reading of the environment cannot override it. The OTEL_* variables that
// TraceConfig has no field for (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT,
// _COMPRESSION, _CERTIFICATE, OTEL_BSP_*, span limits) are still read by
// the SDK itself, and the SDK always adds the attributes of
// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME under cfg's: where both
// set an attribute, cfg wins.
//
// NewTracerProvider sets no globals: pass the provider and Propagator to
// the instrumentation explicitly.
func NewTracerProvider(ctx context.Context, cfg TraceConfig) (*sdktrace.TracerProvider, error) {
	sampler, err := newSampler(cfg.Sampler, cfg.SamplerArg)
	if err != nil {
		return nil, err
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	exp, err := newExporter(ctx, cfg)
	if err != nil {
		return nil, err
	}
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(res),
	}
	if exp != nil {
		opts = append(opts, sdktrace.WithBatcher(exp))
	}
	return sdktrace.NewTracerProvider(opts...), nil
}

// Propagator returns the propagator of incoming and outgoing requests: W3C
// tracecontext and baggage.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// newSampler returns the sampler named by OTEL_TRACES_SAMPLER and its
// argument.
func newSampler(name, arg string) (sdktrace.Sampler, error) {
	ratio := func() (float64, error) {
		arg = strings.TrimSpace(arg)
		if arg == "" {
			return 1, nil
		}
		r, err := strconv.ParseFloat(arg, 64)
		if err != nil || r < 0 || r > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG %q: want a ratio from 0 to 1", arg)
		}
		return r, nil
	}
	switch strings.ToLower(strings.TrimSpace(name)) {
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.TraceIDRatioBased(r), nil
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		r, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(r)), nil
	}
	return nil, fmt.Errorf("OTEL_TRACES_SAMPLER %q: want always_on, always_off, traceidratio, "+
		"parentbased_always_on, parentbased_always_off or parentbased_traceidratio", name)
}

// newResource describes the process: the SDK, the service's version, the
// resource attributes, then the service name, each overriding the ones
// before it.
func newResource(ctx context.Context, cfg TraceConfig) (*resource.Resource, error) {
	attrs, err := parseResourceAttributes(cfg.ResourceAttributes)
	if err != nil {
		return nil, err
	}
	var all []attribute.KeyValue
	if cfg.ServiceVersion != "" {
		all = append(all, semconv.ServiceVersion(cfg.ServiceVersion))
	}
	all = append(all, attrs...)
	switch {
	case cfg.ServiceName != "":
		all = append(all, semconv.ServiceName(cfg.ServiceName))
	case !hasKey(attrs, semconv.ServiceNameKey):
		all = append(all, semconv.ServiceName("usersd"))
	}
	// resource.New, unlike resource.Default, reads no environment.
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithAttributes(all...),
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return res, nil
}

// parseResourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: key=value pairs
// separated by commas, values percent-encoded.
func parseResourceAttributes(s string) ([]attribute.KeyValue, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var attrs []attribute.KeyValue
	for p := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES %q: want key=value pairs separated by commas", s)
		}
		val, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: value of %s: %w", k, err)
		}
		attrs = append(attrs, attribute.String(k, val))
	}
	return attrs, nil
}

func hasKey(attrs []attribute.KeyValue, key attribute.Key) bool {
	for _, a := range attrs {
		if a.Key == key {
			return true
		}
	}
	return false
}

// newExporter returns the OTLP exporter cfg names, or nil for none.
func newExporter(ctx context.Context, cfg TraceConfig) (sdktrace.SpanExporter, error) {
	protocol := strings.ToLower(strings.TrimSpace(cfg.Protocol))
	switch protocol {
	case "":
		protocol = "grpc"
	case "grpc", "http/protobuf":
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL or OTEL_EXPORTER_OTLP_PROTOCOL %q: want grpc or http/protobuf", cfg.Protocol)
	}
	endpoint := strings.TrimSpace(cfg.Endpoint)
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("OTLP endpoint %q (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT): want an http:// or https:// URL", cfg.Endpoint)
		}
	}
	switch strings.ToLower(strings.TrimSpace(cfg.Exporter)) {
	case "none":
		return nil, nil
	case "":
		if endpoint == "" {
			return nil, nil
		}
	case "otlp":
	default:
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER %q: want otlp or none", cfg.Exporter)
	}

	// WithEndpointURL sets the host, the path and TLS (by the scheme), and,
	// being an option, wins over the exporters' reading of the environment.
	// Neither exporter connects before its first export.
	if protocol == "http/protobuf" {
		if endpoint == "" {
			endpoint = "http://localhost:4318/v1/traces"
		}
		exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(endpoint))
		if err != nil {
			return nil, fmt.Errorf("OTLP/HTTP trace exporter: %w", err)
		}
		return exp, nil
	}
	if endpoint == "" {
		endpoint = "http://localhost:4317"
	}
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, fmt.Errorf("OTLP/gRPC trace exporter: %w", err)
	}
	return exp, nil
}
