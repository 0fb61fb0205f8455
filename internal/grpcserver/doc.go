// Package grpcserver serves the users API over gRPC: it maps protobuf
// messages to the domain and back, validates requests against the
// contract's protovalidate rules, and turns domain errors into gRPC statuses
// through one table (errors.go). The HTTP gateway calls the same server
// through the same interceptors, so every rule is enforced once.
package grpcserver
