package users

import (
	"context"
	"fmt"
)

// DefaultMaxExports is how many exports a Service runs at once when its
// Config sets none.
const DefaultMaxExports = 2

// ExportRequest is the input of Export.
type ExportRequest struct {
	// Tenant is the tenant whose users are exported; "" is DefaultTenant.
	Tenant string
	// Filter is a filter in ListUsers' grammar (ParseFilter).
	Filter string
	// ShowDeleted includes the soft-deleted users.
	ShowDeleted bool
}

// Export calls fn for every user of the tenant that matches the request,
// by CreateTime, then id, all read from one snapshot of the store: a user
// created, changed or deleted while the export runs is exported as it was
// when the export began, or not at all if it did not exist then. It holds
// no more than a batch of users in memory, whatever their number. An error
// of fn stops the export, and Export returns it as fn did.
//
// At most Config.MaxExports run at once; another is ErrUnavailable
// (cause "exports_busy"), to be tried again later.
//
// The request is checked before the store is read: an *InvalidError for
// a malformed tenant or filter, ErrNotFound for a tenant the caller is not
// bound to, or (from the store, before fn is first called) one that does
// not exist or is deleted.
func (s *Service) Export(ctx context.Context, req ExportRequest, fn func(*User) error) error {
	tenant, err := s.oneTenant(ctx, "parent", req.Tenant)
	if err != nil {
		return err
	}
	filter, err := ParseFilter(req.Filter)
	if err != nil {
		return err
	}
	// Each export holds a connection and a snapshot of the store for as
	// long as its client reads: only a few at a time, lest slow or idle
	// readers take every connection from the other calls.
	select {
	case s.exports <- struct{}{}:
		defer func() { <-s.exports }()
	default:
		return Unavailable("exports_busy", fmt.Errorf("%d exports are running on this replica, the most it runs at once", cap(s.exports)))
	}
	return s.store.ExportUsers(ctx, ListQuery{Tenant: tenant, Filter: filter, ShowDeleted: req.ShowDeleted}, fn)
}
