package postgres

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// DefaultConnectTimeout bounds each host's connection attempt (TCP, TLS,
// authentication and the target_session_attrs check) when the URL has no
// connect_timeout. pgxpool's own default is two minutes: with a multi-host
// URL whose first host hangs (a frozen primary, a partition that drops
// packets instead of refusing them), every new connection would wait that
// long before trying the promoted standby. Two seconds is libpq's advice
// for the least connect_timeout; it also leaves a connection made outside
// the pool within a 5 s budget (the job queue's liveness lock) time for a
// second host after a silent first one.
const DefaultConnectTimeout = 2 * time.Second

// The TCP keepalive of the pool's connections: an idle connection to a
// host that is gone without a word (a partition, a lost node) is noticed
// after about Idle + Interval × Count (25 s), not the operating system's
// default of two hours, or Go's of about 2.5 minutes. This matters most
// for connections that wait without a statement, such as River's LISTEN.
var dbKeepAlive = net.KeepAliveConfig{Enable: true, Idle: 10 * time.Second, Interval: 5 * time.Second, Count: 3}

// NewPool returns a connection pool on the database at url (a postgres://
// URL or keyword/value pairs), as pgxpool.New does. It does not connect.
//
// The URL may name several hosts (postgres://h1:5432,h2:5432/db?
// target_session_attrs=read-write): each new connection tries them in
// order and keeps the first that accepts writes, so after a failover new
// connections reach the promoted standby. Each host's attempt is bounded
// by the URL's connect_timeout, DefaultConnectTimeout when it has none.
// A connection on which a statement failed because the server is read-only
// (SQLSTATE 25006, what a demoted primary or a standby answers) is closed
// when it returns to the pool instead of being reused, so the next
// connection chooses its host again. Connections that broke are closed by
// pgxpool itself.
//
// When tp is not nil, every statement the pool runs within a sampled trace
// gets a span from tp (otelpgx): named after the SQL operation ("SELECT"),
// with the statement text in db.query.text but never its parameters, which
// may be personal data. Statements outside any trace get no span. The
// tracer records no metrics and reads no globals.
func NewPool(ctx context.Context, url string, tp trace.TracerProvider) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout <= 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	// pgx dials with this for every host (and its fallbacks); the context
	// of each attempt already carries the connect timeout.
	dialer := &net.Dialer{Timeout: cc.ConnectTimeout, KeepAliveConfig: dbKeepAlive}
	cc.DialFunc = dialer.DialContext

	tracers := []pgx.QueryTracer{readOnlyTracer{}}
	if tp != nil {
		// Parameters are left out by default; WithIncludeQueryParameters
		// would add them. No span per pool acquire: its hook copies the
		// whole pool config on every query, 9% of a GetUser's CPU and a
		// tenth of its allocations in docs/performance.md's profile, for a
		// span that says little the query span does not.
		//
		// The connection's attributes (server, port, user, database) are
		// given once, from the pool's config: otelpgx would otherwise read
		// them through pgx.Conn.Config(), which copies the whole connection
		// config on every statement (8% of a GetUser's CPU, same profile).
		// Every connection of the pool has the same ones.
		tracers = append(tracers, otelpgx.NewTracer(
			otelpgx.WithTracerProvider(tp),
			otelpgx.WithMeterProvider(metricnoop.NewMeterProvider()),
			otelpgx.WithDisableAcquireTracer(),
			otelpgx.WithDisableConnectionDetailsInAttributes(),
			otelpgx.WithTracerAttributes(
				semconv.ServerAddress(cc.Host),
				semconv.ServerPort(int(cc.Port)),
				semconv.UserName(cc.User),
				semconv.DBNamespace(cc.Database),
			),
		))
	}
	cc.Tracer = multitracer.New(tracers...)
	if hosts := poolHosts(cc); len(hosts) > 1 {
		pref := &hostPreference{hosts: hosts, lookup: cc.LookupFunc}
		cfg.BeforeConnect, cfg.AfterConnect = pref.beforeConnect, pref.afterConnect
	}
	cfg.AfterRelease = func(c *pgx.Conn) bool {
		return c.PgConn().CustomData()[readOnlyKey] == nil
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// poolHosts returns the hosts of cc in the URL's order, each once (with
// sslmode=prefer, pgx lists each host twice, with and without TLS).
func poolHosts(cc *pgx.ConnConfig) []*pgconn.FallbackConfig {
	var hosts []*pgconn.FallbackConfig
	for _, f := range append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port}}, cc.Fallbacks...) {
		if !slices.ContainsFunc(hosts, func(h *pgconn.FallbackConfig) bool { return h.Host == f.Host && h.Port == f.Port }) {
			hosts = append(hosts, f)
		}
	}
	return hosts
}

// hostPreference makes each new connection of a multi-host pool try first
// the host that the last new connection reached, then the others in the
// URL's order. After a failover, the URL's first host is often the old
// primary: down, or silent until the connect timeout. Without this, every
// new connection would spend that timeout on it before reaching the
// promoted standby; with it, only the first one does.
type hostPreference struct {
	hosts  []*pgconn.FallbackConfig // in the URL's order, each once
	lookup pgconn.LookupFunc
	last   atomic.Pointer[pgconn.FallbackConfig] // one of hosts
}

// beforeConnect reorders the copy of the config that one new connection
// uses.
func (p *hostPreference) beforeConnect(_ context.Context, cc *pgx.ConnConfig) error {
	last := p.last.Load()
	if last == nil || (cc.Host == last.Host && cc.Port == last.Port) {
		return nil
	}
	all := append([]*pgconn.FallbackConfig{{Host: cc.Host, Port: cc.Port, TLSConfig: cc.TLSConfig}}, cc.Fallbacks...)
	var first, rest []*pgconn.FallbackConfig
	for _, f := range all {
		if f.Host == last.Host && f.Port == last.Port {
			first = append(first, f)
		} else {
			rest = append(rest, f)
		}
	}
	if len(first) == 0 {
		return nil
	}
	ordered := append(first, rest...)
	cc.Host, cc.Port, cc.TLSConfig, cc.Fallbacks = ordered[0].Host, ordered[0].Port, ordered[0].TLSConfig, ordered[1:]
	return nil
}

// afterConnect remembers which host the new connection reached (one that
// passed target_session_attrs, if the URL has it).
func (p *hostPreference) afterConnect(ctx context.Context, c *pgx.Conn) error {
	remote := c.PgConn().Conn().RemoteAddr()
	ip, port, err := net.SplitHostPort(remote.String())
	if err != nil {
		return nil // a Unix socket: no preference
	}
	addr := net.ParseIP(ip)
	for _, h := range p.hosts {
		if strconv.Itoa(int(h.Port)) != port {
			continue
		}
		if hip := net.ParseIP(h.Host); hip != nil {
			if hip.Equal(addr) {
				p.last.Store(h)
				return nil
			}
			continue
		}
		// A name: the connection went to one of its addresses.
		lctx, cancel := context.WithTimeout(ctx, time.Second)
		ips, err := p.lookup(lctx, h.Host)
		cancel()
		if err == nil && slices.ContainsFunc(ips, func(s string) bool { return net.ParseIP(s).Equal(addr) }) {
			p.last.Store(h)
			return nil
		}
	}
	return nil
}

// readOnlyKey marks, in a connection's CustomData, a connection whose
// server answered that it is read-only.
const readOnlyKey = "usersd.postgres.readOnly"

// readOnlyTracer marks the connections on which a statement failed with
// read_only_sql_transaction (25006), for the pool's AfterRelease to close.
// It adds no work to statements that succeed.
type readOnlyTracer struct{}

func markReadOnly(conn *pgx.Conn, err error) {
	if err == nil {
		return // before the declaration below, which escapes: no allocation per statement
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "25006" {
		conn.PgConn().CustomData()[readOnlyKey] = true
	}
}

func (readOnlyTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (readOnlyTracer) TraceQueryEnd(_ context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	markReadOnly(conn, data.Err)
}

func (readOnlyTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (readOnlyTracer) TraceBatchQuery(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchQueryData) {
	markReadOnly(conn, data.Err)
}

func (readOnlyTracer) TraceBatchEnd(_ context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	markReadOnly(conn, data.Err)
}

func (readOnlyTracer) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromStartData) context.Context {
	return ctx
}

func (readOnlyTracer) TraceCopyFromEnd(_ context.Context, conn *pgx.Conn, data pgx.TraceCopyFromEndData) {
	markReadOnly(conn, data.Err)
}
