package openapidoc

import (
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// markNullable lets every property of a message schema that the gateway
// writes as null when unset be null: the gateway emits unpopulated fields
// (protojson's EmitUnpopulated), and a field with presence (a message,
// such as a timestamp, or an optional scalar) that is unset is written as
// null, not left out. Each component schema must be a message or enum of
// file, or google.rpc.Status and google.protobuf.Any, which have no such
// field; google.protobuf.NullValue, unused, is removed.
func markNullable(doc *openapi3.T, file protoreflect.FileDescriptor) error {
	// protoc-gen-openapiv2 names a schema by the message's or enum's own
	// name, or, when two nested ones share it, by its name within the
	// package ("Tenant.State").
	messages := map[string]protoreflect.MessageDescriptor{}
	enums := map[string]bool{}
	pkg := string(file.Package()) + "."
	var walk func(ms protoreflect.MessageDescriptors, es protoreflect.EnumDescriptors)
	walk = func(ms protoreflect.MessageDescriptors, es protoreflect.EnumDescriptors) {
		for i := range es.Len() {
			e := es.Get(i)
			enums[string(e.Name())] = true
			enums[strings.TrimPrefix(string(e.FullName()), pkg)] = true
		}
		for i := range ms.Len() {
			m := ms.Get(i)
			messages[string(m.Name())] = m
			messages[strings.TrimPrefix(string(m.FullName()), pkg)] = m
			walk(m.Messages(), m.Enums())
		}
	}
	walk(file.Messages(), file.Enums())

	for name, ref := range doc.Components.Schemas {
		m, ok := messages[name]
		// protoc-gen-openapiv2 makes XBody, the body of XRequest without
		// the path's fields; no answer has it, so nothing in it is null.
		_, requestBody := messages[strings.TrimSuffix(name, "Body")+"Request"]
		switch {
		case ok:
		case enums[name], requestBody && strings.HasSuffix(name, "Body"), name == "Status", name == "Any":
			continue
		case name == "NullValue":
			// google.protobuf.Struct's, which protoc-gen-openapiv2 emits
			// with every Struct field though none refers to it: a Struct
			// is any JSON object.
			delete(doc.Components.Schemas, name)
			continue
		default:
			return fmt.Errorf("schema %s is no message or enum of %s", name, file.Path())
		}
		for prop, s := range ref.Value.Properties {
			fd := m.Fields().ByJSONName(prop)
			if fd == nil {
				return fmt.Errorf("schema %s: property %s is no field of %s", name, prop, m.FullName())
			}
			if fd.HasPresence() && !fd.IsList() && !fd.IsMap() {
				ref.Value.Properties[prop] = nullable(s)
			}
		}
	}
	return nil
}

// nullable returns s, or null.
func nullable(s *openapi3.SchemaRef) *openapi3.SchemaRef {
	if s.Ref != "" {
		return &openapi3.SchemaRef{Value: &openapi3.Schema{
			AnyOf: openapi3.SchemaRefs{{Ref: s.Ref}, {Value: &openapi3.Schema{Type: &openapi3.Types{openapi3.TypeNull}}}},
		}}
	}
	v := *s.Value
	if v.Type != nil && !v.Type.Includes(openapi3.TypeNull) {
		t := append(v.Type.Slice(), openapi3.TypeNull)
		v.Type = (*openapi3.Types)(&t)
	}
	return &openapi3.SchemaRef{Value: &v}
}
