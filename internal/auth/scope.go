package auth

// Scope returns the scope that lets any caller make the call of a full
// method name ("/users.v2.UserService/GetUser"), from the one table of
// rules; ok is false for a method no rule lists, which is denied to
// everyone. The OpenAPI documents name it on each operation.
func Scope(fullMethod string) (scope string, ok bool) {
	r, ok := byMethod[fullMethod]
	return r.scope, ok
}
