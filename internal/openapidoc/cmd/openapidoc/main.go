// Command openapidoc writes the OpenAPI 3.1 document of each major version
// of the HTTP/JSON API, api/users/vN/users.openapi.json, from the OpenAPI 2
// document protoc-gen-openapiv2 wrote for it under -in. `make generate`
// runs it.
//
//	openapidoc -in .bin/openapiv2 -out api
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"maps"

	"github.com/usersd/usersd/internal/openapidoc"
)

func main() {
	in := flag.String("in", ".bin/openapiv2", "directory of protoc-gen-openapiv2's output")
	out := flag.String("out", "api", "directory to write users/vN/users.openapi.json under")
	flag.Parse()
	for _, v := range slices.Sorted(maps.Keys(openapidoc.APIs)) {
		if err := write(*in, *out, v); err != nil {
			fmt.Fprintf(os.Stderr, "openapidoc: %s: %v\n", v, err)
			os.Exit(1)
		}
	}
}

func write(in, out, version string) error {
	rel := filepath.Join("users", version)
	swagger, err := os.ReadFile(filepath.Join(in, rel, "users.swagger.json"))
	if err != nil {
		return err
	}
	doc, err := openapidoc.Build(openapidoc.APIs[version], swagger)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, rel, "users.openapi.json"), doc, 0o644)
}
