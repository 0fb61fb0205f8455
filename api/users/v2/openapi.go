package usersv2

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document of the users.v2 HTTP/JSON API,
// users.openapi.json, which `make generate` writes from users.proto
// (internal/openapidoc). Read it; never assign to it.
//
//go:embed users.openapi.json
var OpenAPI string
