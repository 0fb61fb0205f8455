package scim

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"

	filter "github.com/scim2/filter-parser/v2"
)

// MaxPatchOperations bounds the operations of one PATCH request. Identity
// providers send a handful; Microsoft Entra ID batches group member
// changes, a few hundred at most.
const MaxPatchOperations = 1000

// The operations of a PATCH (RFC 7644 section 3.5.2), in the lower case
// they are kept in; requests may write them in any case ("Replace").
const (
	opAdd     = "add"
	opReplace = "replace"
	opRemove  = "remove"
)

// Patch is a parsed PatchOp request. It is applied to a resource
// (ApplyToUser, ApplyToGroup), whose result is mapped back to the domain
// as a PUT's body would be: PATCH needs no rules of its own for what
// usersd keeps.
type Patch struct {
	ops []operation
}

// operation is one of a Patch's operations.
type operation struct {
	op string
	// path is nil for an operation without a path, whose value is an
	// object of attributes.
	path     *filter.Path
	pathText string
	value    any
}

// ParsePatch parses a PatchOp request body. Member names match in any case,
// the op in any case too; schemas, when present, must list the PatchOp
// URN. Errors are 400s (413 for a body over MaxBodyBytes).
func ParsePatch(body []byte) (*Patch, error) {
	obj, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	var (
		rawOps any
		found  bool
	)
	for _, k := range sortedKeys(obj) {
		switch {
		case strings.EqualFold(k, "schemas"):
			if !listsSchema(obj[k], PatchOpSchema) {
				return nil, invalidSyntax("schemas: want [%q]", PatchOpSchema)
			}
		case strings.EqualFold(k, "Operations"):
			if found {
				return nil, invalidSyntax("Operations given twice")
			}
			rawOps, found = obj[k], true
		}
	}
	list, ok := rawOps.([]any)
	switch {
	case !found:
		return nil, invalidSyntax("Operations: required")
	case !ok:
		return nil, invalidSyntax("Operations: want an array, got %s", jsonKind(rawOps))
	case len(list) == 0:
		return nil, invalidValue("Operations: at least one operation is required")
	case len(list) > MaxPatchOperations:
		return nil, invalidValue("Operations: %d operations, more than %d", len(list), MaxPatchOperations)
	}
	p := &Patch{ops: make([]operation, 0, len(list))}
	for i, raw := range list {
		op, err := parseOperation(raw)
		if err != nil {
			return nil, withPrefix(err, fmt.Sprintf("Operations[%d]: ", i))
		}
		p.ops = append(p.ops, op)
	}
	return p, nil
}

// listsSchema reports whether v is an array of strings holding urn.
func listsSchema(v any, urn string) bool {
	list, _ := v.([]any)
	for _, e := range list {
		if s, ok := e.(string); ok && strings.EqualFold(s, urn) {
			return true
		}
	}
	return false
}

// parseOperation reads one element of Operations.
func parseOperation(raw any) (operation, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		return operation{}, invalidSyntax("want an object, got %s", jsonKind(raw))
	}
	var (
		op       operation
		hasValue bool
	)
	for _, k := range sortedKeys(obj) {
		v := obj[k]
		switch {
		case strings.EqualFold(k, "op"):
			s, _ := v.(string)
			switch strings.ToLower(s) {
			case opAdd, opReplace, opRemove:
				op.op = strings.ToLower(s)
			default:
				return operation{}, invalidSyntax("op: want add, replace or remove, got %s", describe(v))
			}
		case strings.EqualFold(k, "path"):
			if v == nil {
				continue
			}
			s, ok := v.(string)
			if !ok {
				return operation{}, invalidPath("path: want a string, got %s", jsonKind(v))
			}
			op.pathText = s
		case strings.EqualFold(k, "value"):
			op.value, hasValue = v, true
		}
	}
	if op.op == "" {
		return operation{}, invalidSyntax("op: required")
	}
	if strings.TrimSpace(op.pathText) != "" {
		path, err := parsePath(op.pathText)
		if err != nil {
			return operation{}, err
		}
		op.path = &path
	}
	switch {
	case op.op == opRemove && op.path == nil:
		return operation{}, badRequest(TypeNoTarget, "remove needs a path")
	case op.op != opRemove && !hasValue:
		return operation{}, invalidValue("%s needs a value", op.op)
	}
	return op, nil
}

// describe quotes a string and names the type of anything else.
func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return jsonKind(v)
}

// parsePath parses a PATCH path (attrPath, or valuePath with an optional
// sub-attribute), within the bounds of a filter. Every error is a 400
// invalidPath.
func parsePath(text string) (filter.Path, error) {
	s, err := checkFilterText(text)
	if err != nil {
		return filter.Path{}, invalidPath("path %q: %s", truncate(text), err.(*Error).Detail)
	}
	var p filter.Path
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%v", r)
			}
		}()
		p, err = filter.ParsePathNumber([]byte(s))
	}()
	if err != nil {
		return filter.Path{}, invalidPath("path %q is not a SCIM path (RFC 7644 section 3.5.2): %s", truncate(s), parserMessage(err))
	}
	if p.ValueExpression != nil {
		if countTerms(p.ValueExpression) > MaxFilterTerms {
			return filter.Path{}, invalidPath("path %q: more than %d comparisons", truncate(s), MaxFilterTerms)
		}
		if err := unescape(p.ValueExpression); err != nil {
			return filter.Path{}, err
		}
	}
	return p, nil
}

// truncate shortens text quoted in a message.
func truncate(s string) string {
	if len(s) > 100 {
		return s[:100] + "…"
	}
	return s
}

// withPrefix returns err, a *Error, with its detail prefixed.
func withPrefix(err error, prefix string) error {
	e, ok := err.(*Error)
	if !ok {
		return err
	}
	c := *e
	c.Detail = prefix + c.Detail
	return &c
}

// ApplyToUser applies the patch to u and returns the resulting resource;
// u is not changed. The handler maps the result back with
// User.UpdateRequest(prev), which also says whether anything changed.
func (p *Patch) ApplyToUser(u *User) (*User, error) {
	a := &applier{rt: userType, doc: u.toDoc()}
	if err := a.run(p); err != nil {
		return nil, err
	}
	return userFromDoc(a.doc), nil
}

// ApplyToGroup applies the patch to g (whose Members are not read: leave
// them out) and returns the resulting resource, for Group.UpdateRequest,
// and the changes to its membership, which the handler makes with
// AddGroupMembers and RemoveGroupMembers.
func (p *Patch) ApplyToGroup(g *Group) (*Group, *MemberChanges, error) {
	a := &applier{rt: groupType, doc: g.toDoc(), members: &MemberChanges{}}
	if err := a.run(p); err != nil {
		return nil, nil, err
	}
	a.members.finish()
	out := groupFromDoc(a.doc)
	out.Members = nil
	return out, a.members, nil
}

// applier applies operations to a document of one resource type.
type applier struct {
	rt  *resourceType
	doc map[string]any
	// members collects a group's member changes; nil for a user.
	members *MemberChanges
}

func (a *applier) run(p *Patch) error {
	for i, op := range p.ops {
		if err := a.apply(op); err != nil {
			path := op.pathText
			if op.path == nil {
				path = "(no path)"
			}
			return withPrefix(err, fmt.Sprintf("Operations[%d] (%s %s): ", i, op.op, truncate(path)))
		}
	}
	pruneExtensions(a.rt, a.doc)
	return nil
}

// patchTarget is what a PATCH path designates.
type patchTarget struct {
	s *schema
	// a is nil when the target is a whole extension (its URN as the path).
	a *attribute
	// expr and match are the value filter, when the path has one.
	expr  filter.Expression
	match pred
	sub   *attribute
}

func (a *applier) apply(op operation) error {
	if op.path != nil {
		t, err := a.resolve(*op.path)
		if err != nil {
			return err
		}
		return a.applyTo(op.op, t, op.value)
	}
	// No path: the value is an object whose members are attributes, by
	// name, dotted sub-attribute path (Microsoft Entra ID's
	// "name.givenName"), value path, or URN-qualified name, and the
	// extensions' objects under their URNs.
	obj, ok := op.value.(map[string]any)
	if !ok {
		return invalidValue("without a path, the value must be an object of attributes, got %s", jsonKind(op.value))
	}
	for _, k := range sortedKeys(obj) {
		if strings.EqualFold(k, "schemas") {
			continue
		}
		var t patchTarget
		if ext := a.rt.extension(k); ext != nil {
			t.s = ext
		} else {
			path, err := parsePath(k)
			if err != nil {
				return err
			}
			if t, err = a.resolve(path); err != nil {
				return err
			}
		}
		if err := a.applyTo(op.op, t, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// resolve finds what a path designates: names match in any case and may
// carry their schema's URN; the URN alone designates an extension.
func (a *applier) resolve(p filter.Path) (patchTarget, error) {
	ap := p.AttributePath
	if ap.URIPrefix != nil && ap.SubAttribute == nil && p.ValueExpression == nil && p.SubAttribute == nil {
		if ext := a.rt.extension(ap.URI() + ":" + ap.AttributeName); ext != nil {
			return patchTarget{s: ext}, nil
		}
	}
	attr, s := a.rt.lookup(ap.URI(), ap.AttributeName)
	if attr == nil {
		return patchTarget{}, invalidPath("unknown attribute %q", p.String())
	}
	t := patchTarget{s: s, a: attr}
	sub := ap.SubAttribute
	if p.ValueExpression != nil {
		if ap.SubAttribute != nil {
			return patchTarget{}, invalidPath("%q: a value filter applies to an attribute, not to a sub-attribute", p.String())
		}
		sub = p.SubAttribute
		if attr.ignored {
			return t, nil
		}
		if attr.typ != typeComplex {
			return patchTarget{}, invalidPath("%s is not complex: it has no values to filter", attr.name)
		}
		t.expr = p.ValueExpression
		if a.members == nil || attr.name != "members" {
			c := &compiler{rt: a.rt}
			m, err := c.expr(p.ValueExpression, attr)
			if err != nil {
				return patchTarget{}, err
			}
			t.match = m
		}
	}
	if sub != nil && !attr.ignored {
		if attr.typ != typeComplex {
			return patchTarget{}, invalidPath("%s has no sub-attributes", attr.name)
		}
		if t.sub = attr.sub(*sub); t.sub == nil {
			return patchTarget{}, invalidPath("unknown attribute %q", p.String())
		}
	}
	return t, nil
}

// mutabilityError is the error of a change to what a client cannot change.
func mutabilityError(format string, args ...any) *Error {
	return badRequest(TypeMutability, format, args...)
}

// applyTo applies one operation to its target.
func (a *applier) applyTo(op string, t patchTarget, value any) error {
	if t.a == nil {
		return a.applyExtension(op, t.s, value)
	}
	name := t.a.name
	if t.s.ext {
		name = t.s.urn + ":" + name
	}
	switch {
	case t.a.ignored || t.sub != nil && t.sub.ignored:
		return nil
	case t.a.name == "id":
		// Clients send a resource's id back (Okta renames a group with
		// {"id": …, "displayName": …}): the same id changes nothing.
		if s, ok := value.(string); ok && op != opRemove && t.sub == nil && strings.EqualFold(s, getString(a.doc, "id")) {
			return nil
		}
		return mutabilityError("id is read-only")
	case t.a.name == "meta" && op != opRemove:
		return nil // server-kept; clients echo it
	case a.members != nil && t.a.name == "members":
		return a.applyMembers(op, t, value)
	case t.a.mut == readOnly || t.sub != nil && t.sub.mut == readOnly:
		return mutabilityError("%s is read-only", name)
	case op == opRemove || value == nil && op == opReplace:
		return a.remove(t, name, value)
	case value == nil:
		return nil // add null adds nothing
	case !t.a.multi && t.a.typ != typeComplex:
		v, err := canon(t.a, value, name, TypeInvalidValue)
		if err != nil {
			return err
		}
		if v == nil {
			return a.remove(t, name, nil)
		}
		container(a.doc, t.s, true)[t.a.name] = v
		return nil
	case !t.a.multi:
		return a.setComplex(op, t, name, value)
	}
	return a.setMulti(op, t, name, value)
}

// applyExtension applies an operation to a whole extension: its value is
// an object of the extension's attributes.
func (a *applier) applyExtension(op string, s *schema, value any) error {
	if op == opRemove || value == nil {
		if op != opAdd {
			delete(a.doc, s.urn)
		}
		return nil
	}
	obj, ok := value.(map[string]any)
	if !ok {
		return invalidValue("%s: want an object, got %s", s.urn, jsonKind(value))
	}
	for _, k := range sortedKeys(obj) {
		attr := findAttr(s.attrs, k)
		if attr == nil {
			return invalidPath("unknown attribute %q", s.urn+":"+k)
		}
		if err := a.applyTo(op, patchTarget{s: s, a: attr}, obj[k]); err != nil {
			return err
		}
	}
	return nil
}

// remove unassigns the target. value, for a multi-valued attribute
// without filter, selects the values to remove: Microsoft Entra ID removes
// group members (and may remove other values) by listing them, where RFC
// 7644 would use a filter.
func (a *applier) remove(t patchTarget, name string, value any) error {
	c := container(a.doc, t.s, false)
	if t.match == nil && t.sub == nil {
		switch {
		case t.a.required:
			return invalidValue("%s is required: it cannot be removed", name)
		case t.a.typ == typeBoolean && t.a.name == "active":
			return invalidValue("active cannot be removed: replace it with true or false")
		case c == nil:
			return nil
		case t.a.multi && value != nil:
			return a.removeValues(c, t, name, value)
		}
		delete(c, t.a.name)
		return nil
	}
	if c == nil {
		return nil
	}
	if !t.a.multi {
		m := getMap(c, t.a.name)
		if m == nil || t.match != nil && !t.match(m) {
			return nil
		}
		if t.sub == nil {
			delete(c, t.a.name)
			return nil
		}
		delete(m, t.sub.name)
		if len(m) == 0 {
			delete(c, t.a.name)
		}
		return nil
	}
	var kept []any
	for _, e := range getList(c, t.a.name) {
		el, _ := e.(map[string]any)
		switch {
		case t.match != nil && !t.match(el):
			kept = append(kept, el)
		case t.sub != nil:
			delete(el, t.sub.name)
			if len(el) > 0 {
				kept = append(kept, el)
			}
		}
	}
	setList(c, t.a.name, kept)
	return nil
}

// removeValues removes the values of a multi-valued attribute that equal
// one of value's (by their value sub-attribute when they have one).
func (a *applier) removeValues(c map[string]any, t patchTarget, name string, value any) error {
	v, err := canon(t.a, value, name, TypeInvalidValue)
	if err != nil {
		return err
	}
	gone, _ := v.([]any)
	var kept []any
	for _, e := range getList(c, t.a.name) {
		if !containsValue(t.a, gone, e) {
			kept = append(kept, e)
		}
	}
	setList(c, t.a.name, kept)
	return nil
}

// containsValue reports whether list holds a value equal to v: the same
// value sub-attribute (compared as the attribute's caseExact says), or
// the same whole value when there is none.
func containsValue(a *attribute, list []any, v any) bool {
	vm, _ := v.(map[string]any)
	vv, hasValue := vm["value"].(string)
	sub := a.sub("value")
	for _, e := range list {
		em, _ := e.(map[string]any)
		ev, ok := em["value"].(string)
		switch {
		case hasValue && ok && sub != nil && !sub.caseExact && lowerKey(ev) == lowerKey(vv),
			hasValue && ok && ev == vv,
			!hasValue && reflect.DeepEqual(e, v):
			return true
		}
	}
	return false
}

func setList(c map[string]any, k string, list []any) {
	if len(list) == 0 {
		delete(c, k)
		return
	}
	c[k] = list
}

// setComplex adds to or replaces a single-valued complex attribute (name,
// the manager): both merge the given sub-attributes into the value, as
// RFC 7644 section 3.5.2.3 says of replace.
func (a *applier) setComplex(op string, t patchTarget, name string, value any) error {
	c := container(a.doc, t.s, true)
	m := getMap(c, t.a.name)
	if t.match != nil && (m == nil || !t.match(m)) {
		return badRequest(TypeNoTarget, "%s: no value matches the filter", name)
	}
	if m == nil {
		m = map[string]any{}
	}
	if t.sub != nil {
		v, err := canonScalar(t.sub, value, name+"."+t.sub.name)
		if err != nil {
			return err
		}
		if v == nil {
			delete(m, t.sub.name)
		} else {
			m[t.sub.name] = v
		}
	} else {
		v, err := canonSingle(t.a, value, name, TypeInvalidValue)
		if err != nil {
			return err
		}
		vm, _ := v.(map[string]any)
		for k, x := range vm {
			m[k] = x
		}
	}
	if len(m) == 0 {
		delete(c, t.a.name)
	} else {
		c[t.a.name] = m
	}
	return nil
}

// setMulti adds to or replaces values of a multi-valued attribute.
func (a *applier) setMulti(op string, t patchTarget, name string, value any) error {
	c := container(a.doc, t.s, true)
	list := getList(c, t.a.name)
	keep := -1 // the value whose primary, if set, wins
	switch {
	case t.match == nil && t.sub == nil:
		v, err := canon(t.a, value, name, TypeInvalidValue)
		if err != nil {
			return err
		}
		added, _ := v.([]any)
		if op == opReplace {
			list = nil
		}
		for _, e := range added {
			if !containsEqual(list, e) {
				list = append(list, e)
				if isPrimary(e) {
					keep = len(list) - 1
				}
			}
		}
	case t.match == nil:
		v, err := canonScalar(t.sub, value, name+"."+t.sub.name)
		if err != nil {
			return err
		}
		if len(list) == 0 && v != nil {
			list = []any{map[string]any{t.sub.name: v}}
		}
		for _, e := range list {
			setSub(e.(map[string]any), t.sub.name, v)
		}
		list = dropEmpty(list)
	default:
		var matched []int
		for i, e := range list {
			if t.match(e.(map[string]any)) {
				matched = append(matched, i)
			}
		}
		if len(matched) == 0 {
			// Nothing matches: make the value the filter describes, as
			// identity providers expect when they set
			// emails[type eq "work"].value on a user that has no work
			// address. Only a filter of eq comparisons describes one.
			seed, ok := seedFromFilter(t.a, t.expr)
			if !ok {
				return badRequest(TypeNoTarget, "%s: no value matches the filter", name)
			}
			list = append(list, seed)
			matched = []int{len(list) - 1}
		}
		for _, i := range matched {
			el := list[i].(map[string]any)
			switch {
			case t.sub != nil:
				v, err := canonScalar(t.sub, value, name+"."+t.sub.name)
				if err != nil {
					return err
				}
				setSub(el, t.sub.name, v)
			default:
				v, err := canonSingle(t.a, value, name, TypeInvalidValue)
				if err != nil {
					return err
				}
				vm, _ := v.(map[string]any)
				if op == opReplace {
					clear(el)
				}
				for k, x := range vm {
					el[k] = x
				}
			}
			if isPrimary(el) {
				keep = i
			}
		}
		list = dropEmpty(list)
	}
	fixPrimary(list, keep)
	setList(c, t.a.name, list)
	return nil
}

func setSub(el map[string]any, k string, v any) {
	if v == nil || v == false {
		delete(el, k)
		return
	}
	el[k] = v
}

func dropEmpty(list []any) []any {
	out := list[:0]
	for _, e := range list {
		if m, ok := e.(map[string]any); !ok || len(m) > 0 {
			out = append(out, e)
		}
	}
	return out
}

func containsEqual(list []any, v any) bool {
	for _, e := range list {
		if reflect.DeepEqual(e, v) {
			return true
		}
	}
	return false
}

func isPrimary(v any) bool {
	m, _ := v.(map[string]any)
	p, _ := m["primary"].(bool)
	return p
}

// fixPrimary leaves at most one value marked primary (RFC 7643 section
// 2.4): the one at keep when it is, else the first.
func fixPrimary(list []any, keep int) {
	if keep < 0 || keep >= len(list) || !isPrimary(list[keep]) {
		keep = -1
		for i, e := range list {
			if isPrimary(e) {
				keep = i
				break
			}
		}
	}
	for i, e := range list {
		if i != keep && isPrimary(e) {
			delete(e.(map[string]any), "primary")
		}
	}
}

// seedFromFilter returns the value a filter of eq comparisons joined by
// and describes (type eq "work" describes {"type": "work"}), and false for
// any other filter.
func seedFromFilter(a *attribute, e filter.Expression) (map[string]any, bool) {
	seed := map[string]any{}
	for _, part := range conjuncts(e) {
		ae, ok := part.(*filter.AttributeExpression)
		if !ok || ae.AttributePath.URIPrefix != nil || ae.AttributePath.SubAttribute != nil ||
			!strings.EqualFold(string(ae.Operator), string(filter.EQ)) {
			return nil, false
		}
		sub := a.sub(ae.AttributePath.AttributeName)
		if sub == nil || sub.ignored || sub.mut == readOnly {
			return nil, false
		}
		v, err := canonScalar(sub, ae.CompareValue, sub.name)
		if err != nil || v == nil {
			return nil, false
		}
		seed[sub.name] = v
	}
	return seed, true
}

// applyMembers applies an operation on a group's members to the member
// changes, without reading the membership.
func (a *applier) applyMembers(op string, t patchTarget, value any) error {
	mc := a.members
	if t.sub != nil {
		return invalidPath("members: its sub-attributes cannot be changed: add or remove members")
	}
	if t.expr != nil {
		if op != opRemove {
			return invalidPath("members: a filter selects members to remove; add members without one")
		}
		ids, err := filterMemberIDs(t.expr)
		if err != nil {
			return err
		}
		for _, id := range ids {
			mc.remove(id)
		}
		return nil
	}
	switch op {
	case opRemove:
		if value == nil {
			mc.removeAll()
			return nil
		}
		ids, err := memberValues(t.a, value, false)
		if err != nil {
			return err
		}
		for _, id := range ids {
			mc.remove(id)
		}
		return nil
	case opReplace:
		mc.removeAll()
	}
	ids, err := memberValues(t.a, value, true)
	if err != nil {
		return err
	}
	for _, id := range ids {
		mc.add(id)
	}
	return nil
}

// memberValues returns the user ids of a value of members (an array of
// {"value": id}, one such object, or bare ids). To add (strict), every
// value must be a user id; to remove, a value that is none cannot be a
// member and is skipped.
func memberValues(a *attribute, value any, strict bool) ([]string, error) {
	v, err := canon(a, value, "members", TypeInvalidValue)
	if err != nil {
		return nil, err
	}
	list, _ := v.([]any)
	ids := make([]string, 0, len(list))
	for i, e := range list {
		m := e.(map[string]any)
		id, err := memberID(getString(m, "value"), getString(m, "type"), fmt.Sprintf("members[%d]", i))
		if err != nil {
			if strict {
				return nil, err
			}
			continue
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// filterMemberIDs returns the user ids a members filter selects:
// value eq "<id>" comparisons joined by or (Okta's
// members[value eq "<id>"]). Other filters would need the membership, which
// usersd does not read for a PATCH.
func filterMemberIDs(e filter.Expression) ([]string, error) {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		if strings.EqualFold(string(e.Operator), string(filter.OR)) {
			l, err := filterMemberIDs(e.Left)
			if err != nil {
				return nil, err
			}
			r, err := filterMemberIDs(e.Right)
			return append(l, r...), err
		}
	case *filter.AttributeExpression:
		s, ok := e.CompareValue.(string)
		if ok && e.AttributePath.URIPrefix == nil && e.AttributePath.SubAttribute == nil &&
			strings.EqualFold(e.AttributePath.AttributeName, "value") && strings.EqualFold(string(e.Operator), string(filter.EQ)) {
			if id, ok := userID(s); ok {
				return []string{id}, nil
			}
			return nil, nil // no user has that id: no member to remove
		}
	}
	return nil, &Error{Status: http.StatusBadRequest, ScimType: TypeInvalidFilter,
		Detail: `members: select the members to remove by value eq "<id>", joined by or`}
}
