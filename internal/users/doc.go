// Package users is the domain of usersd: the User type, its rules, the
// errors callers can test for, the Service that applies the rules, and the
// store interfaces that persistence adapters implement, one per concept
// (UserStore, ImportStore, EventStore, WebhookStore, SinkStore; Store is
// all of them).
//
// Nothing here knows about gRPC, HTTP or SQL. Adapters translate to and from
// these types; errors cross the gRPC edge through one table in grpcserver.
package users
