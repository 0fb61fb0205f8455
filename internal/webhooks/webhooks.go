// Package webhooks delivers users.Events to HTTP endpoints as Standard
// Webhooks (www.standardwebhooks.com): one signed JSON POST per event and
// target, with the headers webhook-id (the event's id), webhook-timestamp
// (the attempt's time, unix seconds) and webhook-signature (an HMAC-SHA256
// per "whsec_" secret, see Sign), and the body that Payload describes.
//
// The package makes single attempts and says what to do next; it keeps
// nothing durable. The caller, a job queue, stores targets and events,
// retries an attempt whose Result says Retry (after its RetryAfter, when
// set, or its own backoff) and gives up on one that does not.
//
// A target's URL is chosen by whoever registers it, so the service must not
// be turned against its own network (SSRF). Unless Config.AllowPrivate,
// ValidateURL refuses URLs whose host is a non-public address, and the
// Deliverer checks the address of every connection it opens, after name
// resolution, so a host name resolving to such an address (DNS rebinding
// included) is refused too. Redirects are not followed, and proxies from
// the environment are not used.
//
// Delivery is bounded twice: a token bucket per target limits the rate of
// attempts each target receives, and a semaphore the attempts in flight
// overall. Both bound memory: the buckets kept are capped at
// Config.MaxTargets, least recently used first out. The buckets are a
// ratelimit.Keyed, the same keyed limiter as the API's per-caller limit.
package webhooks

import (
	"errors"
)

// Errors that results and validation wrap; test for them with errors.Is.
var (
	// ErrInvalidTarget is a target or event that cannot be delivered as it
	// is: a URL that ValidateURL refuses, a missing or malformed secret, an
	// event without an id. Retrying will not help.
	ErrInvalidTarget = errors.New("invalid webhook target")
	// ErrForbiddenAddress is a target whose URL names, or whose host
	// resolves to, an address that is not public, when private addresses
	// are not allowed. Retrying will not help.
	ErrForbiddenAddress = errors.New("address not allowed for webhooks")
	// ErrGone is a target that answered 410 Gone: it wants no more
	// webhooks, and the caller should disable it.
	ErrGone = errors.New("webhook target is gone")
	// ErrRateLimited is an attempt not made because the target's rate
	// limit would have held it longer than Config.MaxWait; the result's
	// RetryAfter says when a token will be free.
	ErrRateLimited = errors.New("webhook target rate limit reached")
	// ErrHeld is an attempt not made because its Target.Admit, asked just
	// before sending, said no.
	ErrHeld = errors.New("webhook attempt held back")
)
