package scim

import (
	"encoding/json"
	"net/http"
	"strings"
)

// projection is a query's attributes or excludedAttributes (RFC 7644
// section 3.4.2.5): names of attributes, sub-attributes (name.givenName)
// or extension attributes with their URN
// (urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department),
// in any case. schemas and id are always returned. A nil projection
// returns every attribute.
type projection struct {
	include bool
	paths   []projPath
}

// projPath is one name: the resource's member (as the JSON has it, matched
// in any case) and, maybe, one of its sub-attributes.
type projPath struct{ top, sub string }

// maxProjectionPaths bounds the names of attributes or excludedAttributes.
const maxProjectionPaths = 64

// newProjection returns the projection of the attributes and
// excludedAttributes parameters (comma-separated lists); both given is a
// 400.
func newProjection(attributes, excluded []string) (*projection, error) {
	attributes, excluded = splitNames(attributes), splitNames(excluded)
	switch {
	case len(attributes) > 0 && len(excluded) > 0:
		return nil, badRequest(TypeInvalidValue, "give attributes or excludedAttributes, not both")
	case len(attributes) == 0 && len(excluded) == 0:
		return nil, nil
	}
	p := &projection{include: len(attributes) > 0}
	names := attributes
	if !p.include {
		names = excluded
	}
	if len(names) > maxProjectionPaths {
		return nil, badRequest(TypeInvalidValue, "more than %d attributes", maxProjectionPaths)
	}
	for _, n := range names {
		p.paths = append(p.paths, parseProjPath(n))
	}
	return p, nil
}

// splitNames splits comma-separated lists and drops blanks.
func splitNames(lists []string) []string {
	var out []string
	for _, l := range lists {
		for n := range strings.SplitSeq(l, ",") {
			if n = strings.TrimSpace(n); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}

func parseProjPath(n string) projPath {
	lower := strings.ToLower(n)
	ext := strings.ToLower(EnterpriseSchema)
	switch {
	case lower == ext:
		return projPath{top: EnterpriseSchema}
	case strings.HasPrefix(lower, ext+":"):
		sub, _, _ := strings.Cut(n[len(ext)+1:], ".")
		return projPath{top: EnterpriseSchema, sub: sub}
	}
	for _, core := range []string{UserSchema, GroupSchema} {
		if strings.HasPrefix(lower, strings.ToLower(core)+":") {
			n = n[len(core)+1:]
			break
		}
	}
	top, sub, _ := strings.Cut(n, ".")
	return projPath{top: top, sub: sub}
}

// returns reports whether the resource's answer has the attribute name
// (a top-level one).
func (p *projection) returns(name string) bool {
	if p == nil {
		return true
	}
	for _, pp := range p.paths {
		if strings.EqualFold(pp.top, name) {
			return p.include || pp.sub != ""
		}
	}
	return !p.include
}

// asks reports whether the projection names the attribute in its
// attributes list: what must be asked for to be returned in a list.
func (p *projection) asks(name string) bool {
	return p != nil && p.include && p.returns(name)
}

// apply returns v (a resource) projected.
func (p *projection) apply(v any) (any, error) {
	if p == nil {
		return v, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
	}
	out := map[string]any{}
	for k, val := range doc {
		if k == "schemas" || k == "id" {
			out[k] = val
			continue
		}
		var subs []string
		whole := false
		for _, pp := range p.paths {
			if strings.EqualFold(pp.top, k) {
				if pp.sub == "" {
					whole = true
				} else {
					subs = append(subs, pp.sub)
				}
			}
		}
		switch {
		case p.include && whole:
			out[k] = val
		case p.include && len(subs) > 0:
			if pv := keepSubs(val, subs, true); pv != nil {
				out[k] = pv
			}
		case p.include:
		case whole:
		case len(subs) > 0:
			if pv := keepSubs(val, subs, false); pv != nil {
				out[k] = pv
			}
		default:
			out[k] = val
		}
	}
	return out, nil
}

// keepSubs keeps (or, with keep false, drops) the sub-attributes of a
// complex value or of each value of a multi-valued one.
func keepSubs(v any, subs []string, keep bool) any {
	one := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, val := range m {
			named := false
			for _, s := range subs {
				named = named || strings.EqualFold(s, k)
			}
			if named == keep {
				out[k] = val
			}
		}
		return out
	}
	switch v := v.(type) {
	case map[string]any:
		if m := one(v); len(m) > 0 {
			return m
		}
		return nil
	case []any:
		var out []any
		for _, e := range v {
			if m, ok := e.(map[string]any); ok {
				if pm := one(m); len(pm) > 0 {
					out = append(out, pm)
				}
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	if keep {
		return nil
	}
	return v
}
