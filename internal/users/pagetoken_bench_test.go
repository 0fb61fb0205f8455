package users

import (
	"testing"
	"time"
)

// BenchmarkPageToken measures the page token of every ListUsers call that
// has a next page: encode signs the cursor of the page's last user, decode
// checks the token of the next call and reads the cursor back.
func BenchmarkPageToken(b *testing.B) {
	p := pageTokens{key: DefaultPageTokenKey}
	c := Cursor{CreateTime: time.Date(2026, 5, 6, 7, 8, 9, 123000, time.UTC), EmailKey: "ada.lovelace@example.com", ID: NewID()}
	filter := `state = "ACTIVE"`
	order := Order{Field: OrderEmail}

	b.Run("digest", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			queryDigest(DefaultTenant, filter, order, false, "")
		}
	})
	d := queryDigest(DefaultTenant, filter, order, false, "")
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.encode(d, OrderCreateTime, c)
		}
	})
	tok := p.encode(d, OrderCreateTime, c)
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.decode(tok, d, OrderCreateTime); err != nil {
				b.Fatal(err)
			}
		}
	})
}
