package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/grpcserver"
	"github.com/usersd/usersd/internal/jobs"
	"github.com/usersd/usersd/internal/postgres"
	"github.com/usersd/usersd/internal/ratelimit"
	"github.com/usersd/usersd/internal/users"
	"github.com/usersd/usersd/internal/webhooks"
)

// config is every setting of usersd. Each is a flag with an environment
// fallback; flags win.
type config struct {
	HTTPAddr    string
	GRPCAddr    string
	AdminAddr   string
	DatabaseURL string
	// DatabaseAcquireTimeout bounds a request's wait for a connection of
	// the Postgres pool.
	DatabaseAcquireTimeout time.Duration
	Migrate                bool
	ShutdownDelay          time.Duration
	ShutdownTimeout        time.Duration
	RequestTimeout         time.Duration
	MaxInFlight            int
	LogLevel               string
	LogFormat              string
	LogFlushInterval       time.Duration
	MaxBodyBytes           int64
	PageTokenKey           string
	V1Sunset               time.Time

	GRPCMaxConnectionAge      time.Duration
	GRPCMaxConnectionAgeGrace time.Duration

	ImportWorkers      int
	MaintenanceWorkers int
	ImportChunkSize    int
	JobLease           time.Duration
	JobMaxAttempts     int
	JobRetryBase       time.Duration
	JobRetryMax        time.Duration
	JobPollInterval    time.Duration
	DeletedRetention   time.Duration
	PurgeInterval      time.Duration

	TLSCert     string
	TLSKey      string
	TLSClientCA string

	Auth            string
	AuthIssuer      string
	AuthAudience    string
	AuthJWKS        string
	AuthClockSkew   time.Duration
	AuthTenantClaim string

	EventRetention       time.Duration
	EventRelayInterval   time.Duration
	EventsNATSURL        string
	WebhookAllowPrivate  bool
	WebhookTimeout       time.Duration
	WebhookRate          float64
	WebhookBurst         int
	WebhookMaxConcurrent int
	WebhookWorkers       int
	WebhookDisableAfter  int

	RateLimit        float64
	RateBurst        int
	RateLimitCallers int

	Upstream           string // gateway only
	UpstreamCA         string
	UpstreamCert       string
	UpstreamKey        string
	UpstreamServerName string
}

// envPrefix prefixes every environment variable: --http-addr ↔ USERSD_HTTP_ADDR.
const envPrefix = "USERSD_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// flagSet declares the flags of a command; withServer adds the serving
// ones. The gateway command serves HTTP only, from an upstream: it has no
// database and no gRPC server of its own.
func flagSet(name string, cfg *config, withServer bool, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("usersd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	gw := name == "gateway"
	if !gw {
		fs.StringVar(&cfg.DatabaseURL, "database-url", "sqlite:usersd.db", "`URL` of the database: sqlite:PATH or postgres://… (several host:port pairs and target_session_attrs=read-write for failover)")
		fs.DurationVar(&cfg.DatabaseAcquireTimeout, "database-acquire-timeout", postgres.DefaultAcquireTimeout, "Postgres: longest wait of a request for a free connection of the pool; longer waits answer UNAVAILABLE (503)")
	}
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "log `level`: debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "json", "log `format`: json or console")
	fs.DurationVar(&cfg.LogFlushInterval, "log-flush-interval", 50*time.Millisecond, "longest wait of a log line below warn level before it is written, so a busy server writes its lines in batches (0: each line at once)")
	if withServer {
		fs.StringVar(&cfg.HTTPAddr, "http-addr", ":8080", "`address` of the HTTP/JSON API")
		fs.StringVar(&cfg.AdminAddr, "admin-addr", ":9091", "`address` of the admin endpoints (/livez, /readyz); never expose it publicly")
		fs.DurationVar(&cfg.ShutdownDelay, "shutdown-delay", 5*time.Second, "after SIGTERM, how long to keep serving while readiness reports not-ready, so load balancers notice")
		fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "bound on draining in-flight requests after the delay; then they are cut off")
		fs.DurationVar(&cfg.RequestTimeout, "request-timeout", 30*time.Second, "deadline of requests that bring none (0: none)")
		fs.IntVar(&cfg.MaxInFlight, "max-in-flight", 1000, "requests served at once; more are rejected at once with 503 / RESOURCE_EXHAUSTED (0: no limit)")
		fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 1<<20, "largest HTTP request body accepted; larger gets 413")
		fs.StringVar(&cfg.TLSCert, "tls-cert", "", "PEM `file` of the certificate chain (leaf first) of the public listeners; with --tls-key, they serve TLS and reload the files when they change (default: plaintext)")
		fs.StringVar(&cfg.TLSKey, "tls-key", "", "PEM `file` of the key of --tls-cert")
		fs.StringVar(&cfg.TLSClientCA, "tls-client-ca", "", "PEM `file` of the CAs of client certificates: set, every client must present one (mutual TLS)")
		fs.Var((*sunsetValue)(&cfg.V1Sunset), "v1-sunset", "`date` v1 ends (RFC 3339 date, UTC midnight, or date-time): v1 responses carry Deprecation, Sunset and Link (default: not announced)")
	}
	if withServer && !gw {
		fs.StringVar(&cfg.GRPCAddr, "grpc-addr", ":9090", "`address` of the gRPC API")
		fs.BoolVar(&cfg.Migrate, "migrate", true, "apply database migrations at start")
		fs.StringVar(&cfg.PageTokenKey, "page-token-key", "", "secret that signs page tokens; replicas must share it (default: a built-in key)")
		fs.DurationVar(&cfg.GRPCMaxConnectionAge, "grpc-max-connection-age", 5*time.Minute, "how long a gRPC connection lives before the server asks the client to reconnect, so clients rebalance over new replicas (0: forever)")
		fs.DurationVar(&cfg.GRPCMaxConnectionAgeGrace, "grpc-max-connection-age-grace", 30*time.Second, "how long calls on a connection past its age may still run before it is closed; at most --shutdown-timeout")
		fs.StringVar(&cfg.Auth, "auth", "none", "authentication of API calls: jwt (bearer tokens, see --auth-*) or none (local development only)")
		fs.StringVar(&cfg.AuthIssuer, "auth-issuer", "", "with --auth=jwt: the tokens' required iss")
		fs.StringVar(&cfg.AuthAudience, "auth-audience", "", "with --auth=jwt: the tokens' required aud")
		fs.StringVar(&cfg.AuthJWKS, "auth-jwks", "", "with --auth=jwt: the signing keys, an https:// JWKS URL (cached, refreshed) or a JWKS file")
		fs.DurationVar(&cfg.AuthClockSkew, "auth-clock-skew", 30*time.Second, "with --auth=jwt: leeway on exp, nbf and iat (at most 5m)")
		fs.StringVar(&cfg.AuthTenantClaim, "auth-tenant-claim", auth.DefaultTenantClaim, "with --auth=jwt: the `claim` that binds a token to a tenant (its id); a token without it is the default tenant's, and only the scope tenants.admin acts in every tenant")
		fs.Float64Var(&cfg.RateLimit, "rate-limit", 0, "requests per second each caller (token subject, else IP address) may make on average; more get 429 / RESOURCE_EXHAUSTED (0: no limit)")
		fs.IntVar(&cfg.RateBurst, "rate-burst", 0, "requests a caller may make at once above --rate-limit (0: the rate, rounded up)")
		fs.IntVar(&cfg.RateLimitCallers, "rate-limit-callers", ratelimit.DefaultMaxCallers, "callers whose rate is tracked at once; the least recent are forgotten")
		fs.DurationVar(&cfg.EventRetention, "event-retention", users.DefaultEventRetention, "how long user events are kept for the feed; then a periodic job removes them")
		fs.DurationVar(&cfg.EventRelayInterval, "event-relay-interval", jobs.DefaultRelayEvery, "how often new events are dispatched to webhooks and published to NATS")
		fs.StringVar(&cfg.EventsNATSURL, "events-nats-url", "", "NATS `URL` (nats://host:4222): every event is also published to JetStream, subject usersd.events.<tenant>.<type> (default: off)")
		fs.BoolVar(&cfg.WebhookAllowPrivate, "webhook-allow-private", false, "let webhooks target private, loopback and link-local addresses (only for trusted networks and tests)")
		fs.DurationVar(&cfg.WebhookTimeout, "webhook-timeout", webhooks.DefaultTimeout, "bound on one webhook delivery, from connecting to reading the answer")
		fs.Float64Var(&cfg.WebhookRate, "webhook-rate", float64(webhooks.DefaultRate), "deliveries per second each subscription receives at most, on average, from this replica")
		fs.IntVar(&cfg.WebhookBurst, "webhook-burst", 0, "deliveries a subscription may receive at once (0: the rate, rounded up)")
		fs.IntVar(&cfg.WebhookMaxConcurrent, "webhook-max-concurrent", webhooks.DefaultMaxConcurrent, "webhook deliveries in flight at once on this replica, over all subscriptions; one subscription has at most half of them")
		fs.IntVar(&cfg.WebhookWorkers, "webhook-workers", jobs.DefaultWebhookWorkers, "webhook delivery jobs this replica works on at once; one subscription takes at most half of them")
		fs.IntVar(&cfg.WebhookDisableAfter, "webhook-disable-after", users.DefaultDisableAfter, "failed deliveries in a row after which a subscription is disabled")
		fs.IntVar(&cfg.ImportWorkers, "import-workers", jobs.DefaultImportWorkers, "import chunks this replica works on at once (the import queue's pool)")
		fs.IntVar(&cfg.MaintenanceWorkers, "maintenance-workers", jobs.DefaultMaintenanceWorkers, "maintenance jobs (the purge) this replica works on at once")
		fs.IntVar(&cfg.ImportChunkSize, "import-chunk-size", users.DefaultImportChunkSize, "rows of an import handled by one job, in one transaction")
		fs.DurationVar(&cfg.JobLease, "job-lease", jobs.DefaultLease, "backstop for a stuck job: how long a job may stay running before it runs again (a dead process's jobs run again within seconds); a job times out at half of it")
		fs.IntVar(&cfg.JobMaxAttempts, "job-max-attempts", jobs.DefaultMaxAttempts, "runs of a failing job, with exponential backoff between them, before it is discarded")
		fs.DurationVar(&cfg.JobRetryBase, "job-retry-base", jobs.DefaultRetryBase, "wait before a failed job's first retry; each next one waits twice as long (±10% jitter)")
		fs.DurationVar(&cfg.JobRetryMax, "job-retry-max", jobs.DefaultRetryMax, "longest wait between two runs of a failing job")
		fs.DurationVar(&cfg.JobPollInterval, "job-poll-interval", jobs.DefaultPollInterval, "how often idle workers look for new jobs")
		fs.DurationVar(&cfg.DeletedRetention, "deleted-retention", users.DefaultDeletedRetention, "how long soft-deleted users are kept before the purge job removes them for good")
		fs.DurationVar(&cfg.PurgeInterval, "purge-interval", jobs.DefaultPurgeEvery, "how often the purge job runs (also once at start)")
	}
	if gw {
		fs.StringVar(&cfg.Upstream, "upstream", "", "gRPC `target` of the usersd replicas to serve from (required): dns:///host:port, kubernetes:///service.namespace:port or static:///host:port,host:port")
		fs.StringVar(&cfg.UpstreamCA, "upstream-ca", "", "PEM `file` of the CAs of the replicas' certificates: set, the gateway dials them over TLS (default: plaintext)")
		fs.StringVar(&cfg.UpstreamCert, "upstream-cert", "", "PEM `file` of the client certificate the gateway presents to the replicas (mutual TLS), reloaded when it changes")
		fs.StringVar(&cfg.UpstreamKey, "upstream-key", "", "PEM `file` of the key of --upstream-cert")
		fs.StringVar(&cfg.UpstreamServerName, "upstream-server-name", "", "name the replicas' certificates must carry (default: the host of each address)")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: usersd %s [flags]\n\nEvery flag can also be set with the environment variable USERSD_<FLAG>, e.g. --http-addr as USERSD_HTTP_ADDR.\n\n", name)
		fs.PrintDefaults()
	}
	return fs
}

// parseConfig applies the environment, then the command line.
func parseConfig(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		if v := getenv(name); v != "" {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", name, v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return checkFlags(fs)
}

// checkFlags rejects values of the job flags that cannot work, whether
// they came from the command line or the environment, naming the flag.
func checkFlags(fs *flag.FlagSet) error {
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		var bad string
		switch v := g.Get().(type) {
		case int:
			switch f.Name {
			case "import-workers", "maintenance-workers", "job-max-attempts", "webhook-workers", "webhook-max-concurrent", "webhook-disable-after":
				if v < 1 {
					bad = "must be at least 1"
				}
			case "import-chunk-size":
				if v < 1 || v > users.MaxImportUsers {
					bad = fmt.Sprintf("must be between 1 and %d", users.MaxImportUsers)
				}
			}
		case float64:
			switch {
			case f.Name == "webhook-rate" && !(v > 0):
				bad = "must be positive"
			case f.Name == "rate-limit" && !(v >= 0):
				bad = "must not be negative"
			}
		case time.Duration:
			switch f.Name {
			case "log-flush-interval":
				if v < 0 {
					bad = "must not be negative"
				}
			case "job-lease":
				if v < 2*time.Second {
					bad = "must be at least 2s"
				}
			case "database-acquire-timeout", "job-poll-interval", "job-retry-base", "job-retry-max", "deleted-retention", "purge-interval", "event-retention", "event-relay-interval", "webhook-timeout":
				if v < time.Millisecond {
					bad = "must be positive"
				}
			}
		}
		if bad != "" {
			errs = append(errs, fmt.Errorf("--%s=%s: %s", f.Name, f.Value, bad))
		}
	})
	return errors.Join(errs...)
}

// sunsetValue is the flag.Value of a sunset: an RFC 3339 date (midnight
// UTC) or date-time, not before v1 was deprecated; empty means none.
type sunsetValue time.Time

func (v *sunsetValue) String() string {
	if v == nil || time.Time(*v).IsZero() {
		return ""
	}
	return time.Time(*v).Format(time.RFC3339)
}

func (v *sunsetValue) Set(s string) error {
	if s == "" {
		*v = sunsetValue{}
		return nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		if t, err = time.Parse(time.RFC3339, s); err != nil {
			return errors.New("want an RFC 3339 date (2027-06-30) or date-time (2027-06-30T12:00:00Z)")
		}
	}
	if t.Before(grpcserver.V1Deprecated) {
		return fmt.Errorf("before v1 was deprecated (%s)", grpcserver.V1Deprecated.Format(time.DateOnly))
	}
	*v = sunsetValue(t)
	return nil
}
