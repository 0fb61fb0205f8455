// Package grpcserver serves the users API over gRPC: it maps protobuf
// messages to the domain and back, validates requests against the
// contract's protovalidate rules, and turns domain errors into gRPC statuses
// through one table (errors.go), with field paths in the terms of the
// version called (fieldpaths.go). ServerV2 implements users.v2, the
// complete API; Server serves the frozen users.v1 as a thin adapter over
// it. The HTTP gateway calls the same servers through the same
// interceptors, so every rule is enforced once.
package grpcserver
