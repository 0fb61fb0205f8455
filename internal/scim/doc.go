// Package scim is the foundation of usersd's SCIM 2.0 service (RFC 7643
// schemas, RFC 7644 protocol), through which identity providers such as
// Okta and Microsoft Entra ID provision a tenant's users and groups.
//
// It holds the resources, filters, PATCH and errors, and the handler
// built on them:
//
//   - the resources, User (the core schema and the enterprise extension)
//     and Group, their decoding from request bodies (DecodeUser,
//     DecodeGroup) and their mapping to and from the domain's users.User
//     and users.Group (UserFromDomain, User.ToDomain, User.UpdateRequest,
//     and the same for groups);
//   - filters (CompileUserFilter, CompileGroupFilter): the part of a
//     filter that the stores answer from their indexes, as a filter string
//     of the users API, and a predicate over the resources for the rest;
//   - PATCH (ParsePatch, Patch.ApplyToUser, Patch.ApplyToGroup), applied
//     to the resource and then mapped back, with a group's member changes
//     returned as lists of ids rather than as its whole membership;
//   - errors (Error, FromError): SCIM's error body and the one mapping of
//     the domain's errors to HTTP statuses and scimTypes;
//   - the HTTP handler (NewHandler) of a tenant's SCIM service under
//     /scim/v2/tenants/{tenant}/, authenticated by an Authenticator.
//
// docs/scim.md is the reference: the mapping table, the attributes that
// are accepted and not kept, the filter and PATCH rules, the errors, and
// what the handler serves.
package scim
