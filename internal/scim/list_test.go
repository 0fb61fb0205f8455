package scim

import "testing"

func TestListResponse(t *testing.T) {
	jsonEqual(t, NewListResponse[*User](0, 1, nil),
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"startIndex":1,"itemsPerPage":0,"Resources":[]}`)
	g := GroupFromDomain(aGroup(), nil, "")
	got := NewListResponse(7, 3, []*Group{g})
	if got.ItemsPerPage != 1 || got.TotalResults != 7 || got.StartIndex != 3 || got.Resources[0] != g {
		t.Errorf("got %+v", got)
	}
}
