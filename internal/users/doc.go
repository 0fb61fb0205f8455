// Package users is the domain of usersd: the User type, its rules, the
// errors callers can test for, the Service that applies the rules, and the
// Store interface that persistence adapters implement.
//
// Nothing here knows about gRPC, HTTP or SQL. Adapters translate to and from
// these types; errors cross the gRPC edge through one table in grpcserver.
package users
