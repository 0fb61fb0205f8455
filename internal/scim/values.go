package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MaxBodyBytes bounds the request bodies this package decodes. It is the
// HTTP gateway's default body limit (--max-body-bytes): a handler reads at
// most this much, and a longer body is refused here too, so that the
// decoders' cost never depends on the reader's care.
const MaxBodyBytes = 1 << 20

// decodeObject reads a request body that must be one JSON object. Numbers
// stay json.Numbers: usersd's schemas have no numeric attribute, so a
// number is only ever reported as the wrong type, never rounded.
func decodeObject(body []byte) (map[string]any, error) {
	if len(body) > MaxBodyBytes {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Detail: fmt.Sprintf("the body is longer than %d bytes", MaxBodyBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, invalidSyntax("the body is not JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalidSyntax("the body holds more than one JSON value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, invalidSyntax("the body is not a JSON object")
	}
	return m, nil
}

// sortedKeys returns the keys of m in order, so that a request's errors and
// effects do not depend on the order Go visits a map in.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jsonKind names the JSON type of a decoded value, for messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// canon checks a decoded JSON value against an attribute and returns it in
// the form resources are kept in while filters and PATCH work on them (a
// "document"): strings, booleans, maps keyed by the canonical names of
// sub-attributes, and []any of those maps for multi-valued attributes. It
// returns nil for a value that leaves the attribute unassigned: null, "",
// an empty object or array (RFC 7644 section 3.5.1 makes them the same).
// Sub-attributes that are ignored or read-only are dropped; an unknown one
// is an error of type unknown (invalidSyntax in a body, invalidValue in a
// PATCH value). name is the attribute as the messages name it.
func canon(a *attribute, v any, name, unknown string) (any, error) {
	if v == nil {
		return nil, nil
	}
	if !a.multi {
		return canonSingle(a, v, name, unknown)
	}
	list, ok := v.([]any)
	if !ok {
		// One value where an array is due: clients send one email or
		// one member as an object, and its meaning is plain.
		list = []any{v}
	}
	out := make([]any, 0, len(list))
	for i, e := range list {
		c, err := canonSingle(a, e, fmt.Sprintf("%s[%d]", name, i), unknown)
		if err != nil {
			return nil, err
		}
		if c != nil {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// canonSingle is canon for one value of a (one element of a multi-valued
// attribute, or a single-valued attribute's value).
func canonSingle(a *attribute, v any, name, unknown string) (any, error) {
	if a.typ != typeComplex {
		return canonScalar(a, v, name)
	}
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		if s, isString := v.(string); isString && a.sub("value") != nil {
			// A bare value for a complex attribute with a "value"
			// sub-attribute: Microsoft Entra ID sends the manager's id
			// this way, and some clients an email or a member.
			obj = map[string]any{"value": s}
		} else {
			return nil, invalidValue("%s: want an object, got %s", name, jsonKind(v))
		}
	}
	out := make(map[string]any, len(obj))
	for _, k := range sortedKeys(obj) {
		sub := a.sub(k)
		if sub == nil {
			return nil, badRequest(unknown, "%s: unknown sub-attribute %q", name, k)
		}
		if _, dup := out[sub.name]; dup {
			return nil, invalidSyntax("%s: %s given twice", name, sub.name)
		}
		if sub.ignored || sub.mut == readOnly {
			continue
		}
		c, err := canonScalar(sub, obj[k], name+"."+sub.name)
		if err != nil {
			return nil, err
		}
		if b, isBool := c.(bool); isBool && !b && a.multi {
			// primary: false is the same as no primary, and one form
			// keeps equal values equal.
			continue
		}
		if c != nil {
			out[sub.name] = c
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// canonScalar is canon for a simple attribute's value.
func canonScalar(a *attribute, v any, name string) (any, error) {
	switch a.typ {
	case typeBoolean:
		switch b := v.(type) {
		case nil:
			return nil, nil
		case bool:
			return b, nil
		case string:
			// Microsoft Entra ID sends booleans as the strings "True"
			// and "False" (its documented non-compliance); nothing else
			// can be meant by them.
			switch {
			case strings.EqualFold(b, "true"):
				return true, nil
			case strings.EqualFold(b, "false"):
				return false, nil
			}
		}
		return nil, invalidValue("%s: want a boolean, got %s", name, jsonKind(v))
	case typeComplex:
		return nil, invalidValue("%s: a complex attribute cannot hold another", name)
	}
	s, ok := v.(string)
	if !ok {
		if v == nil {
			return nil, nil
		}
		return nil, invalidValue("%s: want a string, got %s", name, jsonKind(v))
	}
	if s == "" {
		return nil, nil
	}
	if a.typ == typeDateTime {
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, invalidValue("%s: want an RFC 3339 date and time, got %q", name, s)
		}
	}
	return s, nil
}

// decodeResource reads a resource from a POST or PUT body into a document
// of rt: core attributes at the top, each extension's in an object under
// its URN. The attributes usersd does not keep are dropped, and so are the
// read-only ones (id, meta, groups), which a client may send back as it
// got them (RFC 7644 section 3.5.1); "schemas" is not checked, since
// Microsoft Entra ID lists schemas of its own there. An attribute that no
// schema of rt defines is invalidSyntax: a typo or a mapping usersd cannot
// keep is reported rather than lost.
func decodeResource(rt *resourceType, body []byte) (map[string]any, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	doc := map[string]any{}
	seen := map[string]string{} // canonical name → key as given
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		if strings.EqualFold(k, "schemas") {
			continue
		}
		if ext := rt.extension(k); ext != nil {
			if v == nil {
				continue
			}
			ev, ok := v.(map[string]any)
			if !ok {
				return nil, invalidSyntax("%s: want an object, got %s", ext.urn, jsonKind(v))
			}
			for _, ek := range sortedKeys(ev) {
				a := findAttr(ext.attrs, ek)
				if a == nil {
					return nil, invalidSyntax("%s: unknown attribute %q", ext.urn, ek)
				}
				if err := putDecoded(doc, seen, ext, a, ek, ev[ek]); err != nil {
					return nil, err
				}
			}
			continue
		}
		urn, name := splitURN(k)
		a, s := rt.lookup(urn, name)
		if a == nil {
			if urn != "" && rt.schemaOf(urn) == nil {
				return nil, invalidSyntax("%q: the schema %s is not supported", k, urn)
			}
			return nil, invalidSyntax("unknown attribute %q", k)
		}
		if err := putDecoded(doc, seen, s, a, k, v); err != nil {
			return nil, err
		}
	}
	return doc, nil
}

// putDecoded puts a body's value of attribute a of schema s into doc.
func putDecoded(doc map[string]any, seen map[string]string, s *schema, a *attribute, key string, v any) error {
	full := s.urn + ":" + a.name
	if prev, dup := seen[full]; dup {
		return invalidSyntax("%s given twice (%q and %q)", a.name, prev, key)
	}
	seen[full] = key
	if a.ignored || a.mut == readOnly {
		return nil
	}
	c, err := canon(a, v, a.name, TypeInvalidSyntax)
	if err != nil || c == nil {
		return err
	}
	container(doc, s, true)[a.name] = c
	return nil
}

// splitURN splits "urn:…:User:userName" into the schema URN and the
// attribute name; a name without a colon has no URN.
func splitURN(k string) (urn, name string) {
	i := strings.LastIndexByte(k, ':')
	if i < 0 {
		return "", k
	}
	return k[:i], k[i+1:]
}

// container returns the object of doc that holds the attributes of s: doc
// itself for a core schema, the object under the URN for an extension
// (made when create is set, nil otherwise when absent).
func container(doc map[string]any, s *schema, create bool) map[string]any {
	if !s.ext {
		return doc
	}
	if m, ok := doc[s.urn].(map[string]any); ok {
		return m
	}
	if !create {
		return nil
	}
	m := map[string]any{}
	doc[s.urn] = m
	return m
}

// pruneExtensions removes the extension objects of doc that hold nothing,
// so that a resource whose last extension attribute was removed no longer
// lists the extension.
func pruneExtensions(rt *resourceType, doc map[string]any) {
	for _, s := range rt.extensions {
		if m, ok := doc[s.urn].(map[string]any); ok && len(m) == 0 {
			delete(doc, s.urn)
		}
	}
}
