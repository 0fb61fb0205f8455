package grpcserver

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// V1Deprecated is when users.v1 was deprecated: the release of users.v2. It
// is the date every Deprecation announcement carries.
var V1Deprecated = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

// MigrationGuide is the document the deprecation and sunset links point to.
// It is absolute: the API server does not serve the documentation itself.
const MigrationGuide = "https://github.com/usersd/usersd/blob/main/docs/api.md#migrating-from-v1-to-v2"

// Keys of the retirement signals. Over HTTP they are the header names
// (Deprecation, Sunset, Link); over gRPC, the response metadata keys.
const (
	MDDeprecation = "deprecation"
	MDSunset      = "sunset"
	MDLink        = "link"
)

// Retirement is the announcement that an API version ends, as the values
// of the Deprecation (RFC 9745), Sunset (RFC 8594) and Link headers.
type Retirement struct {
	// Deprecation is an RFC 9651 date, "@" and Unix seconds.
	Deprecation string
	// Sunset is an HTTP-date (IMF-fixdate).
	Sunset string
	// Link points to the migration guide with the relations "deprecation"
	// (RFC 9745) and "sunset" (RFC 8594).
	Link string
}

// V1Retirement returns the announcement that v1 was deprecated at
// V1Deprecated and ends at sunset.
func V1Retirement(sunset time.Time) Retirement {
	return Retirement{
		Deprecation: "@" + strconv.FormatInt(V1Deprecated.Unix(), 10),
		Sunset:      sunset.UTC().Format(http.TimeFormat),
		Link:        `<` + MigrationGuide + `>; rel="deprecation", <` + MigrationGuide + `>; rel="sunset"`,
	}
}

// SunsetInterceptor announces the retirement of users.v1 at sunset: every
// call to a users.v1 method gets the deprecation, sunset and link response
// metadata, whatever its outcome. Calls to other services pass untouched.
func SunsetInterceptor(sunset time.Time) grpc.UnaryServerInterceptor {
	r := V1Retirement(sunset)
	md := metadata.Pairs(MDDeprecation, r.Deprecation, MDSunset, r.Sunset, MDLink, r.Link)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if strings.HasPrefix(info.FullMethod, "/users.v1.") {
			// It fails only without a server stream in ctx (a direct call),
			// where there is nobody to tell; the call itself goes on.
			_ = grpc.SetHeader(ctx, md)
		}
		return handler(ctx, req)
	}
}
