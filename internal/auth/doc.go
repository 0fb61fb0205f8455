// Package auth authenticates the callers of the users API with bearer JWTs
// and authorizes each call by OAuth scopes, in gRPC interceptors that every
// call passes, whether it arrives over gRPC or through the HTTP gateway.
//
// Tokens are verified against the keys of a JWKS (a file or an HTTPS URL)
// that an Authenticator keeps in memory and refreshes: periodically, and
// when a token names a key it does not know, at most once per
// Config.MinRefreshInterval, so that a rotation of the issuer's keys needs
// no restart. Only RS256, ES256 and EdDSA signatures are accepted; "none",
// HMAC and every other algorithm are rejected before any key is looked up.
//
// The table in policy.go says which scope each RPC needs and when a caller
// may act on its own user without one; an RPC it does not list is denied.
// The services grpc.health.v1 and grpc.reflection stay public.
package auth
