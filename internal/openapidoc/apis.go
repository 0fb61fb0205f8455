package openapidoc

import (
	usersv1 "github.com/usersd/usersd/api/users/v1"
	usersv2 "github.com/usersd/usersd/api/users/v2"
)

// APIs are the major versions of the HTTP/JSON API, by version.
var APIs = map[string]API{
	"v1": {File: usersv1.File_users_v1_users_proto, Examples: map[string]Example{
		"CreateUser": {
			Request:  `{"email":"ada@example.com","displayName":"Ada Lovelace","labels":{"team":"math"}}`,
			Response: v1User,
		},
		"GetUser": {Response: v1User},
	}},
	"v2": {File: usersv2.File_users_v2_users_proto, Examples: map[string]Example{
		"CreateUser": {
			Request:  `{"email":"ada@example.com","displayName":"Ada Lovelace","labels":{"team":"math"}}`,
			Response: v2User,
		},
		"GetUser": {Response: v2User},
		"ListUsers": {Response: `{"users":[` + v2User + `],` +
			`"nextPageToken":"CgwI5Yq/ywYQ6MjG8gESJDAxYTI0ZTQyLWI1ZGMtNzg2YS1iOGUzLTAyNjM3Mzc5ZTMzNQ"}`},
		"UpdateUser": {
			Request: `{"displayName":"Ada, Countess of Lovelace"}`,
			Response: `{"name":"users/01a24e42-b5dc-786a-b8e3-02637379e335","email":"ada@example.com",` +
				`"displayName":"Ada, Countess of Lovelace","state":"STATE_ACTIVE","labels":{"team":"math"},` +
				`"createTime":"2026-12-07T02:08:44.508537Z","updateTime":"2026-12-07T02:11:03.120044Z",` +
				`"deleteTime":null,"etag":"5be1c0b8e1f2a7d4"}`,
		},
		"DeleteUser": {Response: `{"name":"users/01a24e42-b5dc-786a-b8e3-02637379e335","email":"ada@example.com",` +
			`"displayName":"Ada Lovelace","state":"STATE_DELETED","labels":{"team":"math"},` +
			`"createTime":"2026-12-07T02:08:44.508537Z","updateTime":"2026-12-07T02:12:30.001982Z",` +
			`"deleteTime":"2026-12-07T02:12:30.001982Z","etag":"9f03c2a1d4e5b6c7"}`},
		"ImportUsers": {
			Request: `{"requestId":"import-2026-12-07","users":[` +
				`{"email":"lin@example.com","displayName":"Lin Wei","labels":{"team":"ops"}},` +
				`{"email":"not-an-address","displayName":"X"}]}`,
			Response: `{"name":"operations/01a24e42-b61f-7b03-9251-9ebee64f2285","done":false,` +
				`"metadata":{"total":2,"imported":0,"failed":0,` +
				`"createTime":"2026-12-07T02:08:44.575711Z","updateTime":"2026-12-07T02:08:44.575711Z"},"response":null}`,
		},
		"CreateWebhook": {
			// enabled is false unless set: a subscription created without it
			// receives nothing until it is enabled.
			Request: `{"url":"https://hooks.example.org/usersd","eventTypes":["user.created","user.deleted"],"enabled":true}`,
		},
		"CreateTenant": {
			Request: `{"displayName":"Acme","settings":{"maxUsers":10000,"requestsPerSecond":200}}`,
			Response: `{"name":"tenants/acme","displayName":"Acme","state":"STATE_ACTIVE",` +
				`"settings":{"maxUsers":10000,"requestsPerSecond":200},"createTime":"2026-12-07T02:08:44.508537Z",` +
				`"updateTime":"2026-12-07T02:08:44.508537Z","deleteTime":null,"etag":"7415020e4feb53fd"}`,
		},
		"GetOperation": {Response: `{"name":"operations/01a24e42-b61f-7b03-9251-9ebee64f2285","done":true,` +
			`"metadata":{"total":2,"imported":1,"failed":1,` +
			`"createTime":"2026-12-07T02:08:44.575711Z","updateTime":"2026-12-07T02:08:44.702113Z"},` +
			`"response":{"failures":[{"index":1,"reason":"email: must be a valid email address"}]}}`},
	}},
}

const (
	v1User = `{"id":"01a24e42-b5dc-786a-b8e3-02637379e335","email":"ada@example.com","displayName":"Ada Lovelace",` +
		`"state":"STATE_ACTIVE","labels":{"team":"math"},"createTime":"2026-12-07T02:08:44.508537Z",` +
		`"updateTime":"2026-12-07T02:08:44.508537Z","deleteTime":null,"etag":"07dff3d6975efa09"}`
	v2User = `{"name":"users/01a24e42-b5dc-786a-b8e3-02637379e335","email":"ada@example.com","displayName":"Ada Lovelace",` +
		`"state":"STATE_ACTIVE","labels":{"team":"math"},"createTime":"2026-12-07T02:08:44.508537Z",` +
		`"updateTime":"2026-12-07T02:08:44.508537Z","deleteTime":null,"etag":"07dff3d6975efa09"}`
)
