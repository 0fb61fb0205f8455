package scim

// MediaType is the content type of SCIM's requests and answers (RFC 7644
// section 3.1); clients may also send and accept application/json.
const MediaType = "application/scim+json"

// ListResponse is the body of a query's answer (RFC 7644 section 3.4.2):
// a page of resources (*User or *Group), StartIndex counting from 1.
type ListResponse[T any] struct {
	Schemas      []string `json:"schemas"`
	TotalResults int      `json:"totalResults"`
	StartIndex   int      `json:"startIndex"`
	ItemsPerPage int      `json:"itemsPerPage"`
	Resources    []T      `json:"Resources"`
}

// NewListResponse returns the answer holding resources, the page that
// starts at startIndex of total matches. Resources is an empty array, not
// null, when there are none: clients index into it.
func NewListResponse[T any](total, startIndex int, resources []T) *ListResponse[T] {
	if resources == nil {
		resources = []T{}
	}
	return &ListResponse[T]{
		Schemas: []string{ListResponseSchema}, TotalResults: total, StartIndex: startIndex,
		ItemsPerPage: len(resources), Resources: resources,
	}
}
