package usersv2

import _ "embed"

// OpenAPI is the OpenAPI 2 document of the users.v2 HTTP/JSON API,
// users.swagger.json, which `make generate` writes from users.proto
// (protoc-gen-openapiv2). Read it; never assign to it.
//
//go:embed users.swagger.json
var OpenAPI string
