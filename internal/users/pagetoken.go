package users

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"

	"github.com/google/uuid"
)

// DefaultPageTokenKey signs page tokens when no key is configured. Tokens
// signed with it still detect corruption and tokens from other queries, but
// only a secret key (--page-token-key) makes them unforgeable. Replicas that
// serve one API must share the key.
var DefaultPageTokenKey = []byte("usersd page token key: set --page-token-key")

const (
	pageTokenVersion = 1
	pageTokenMACSize = 16
)

// pageTokens encodes and checks ListUsers page tokens (AIP-158): opaque to
// clients, bound to the query that produced them, and signed so that a
// changed or foreign token is rejected rather than misread.
//
// Layout before base64url: version (1 byte) | query digest (8) | key time in
// µs, or a search's rank (8) | len(email key) (2) | email key | id (16 bytes of UUID) | MAC (16).
type pageTokens struct{ key []byte }

// queryDigest identifies the parameters a token is valid for, the tenant
// among them: a token of one tenant's list is rejected in another's. The
// default tenant adds nothing, so tokens issued before tenants existed stay
// valid.
func queryDigest(tenant, filter string, o Order, showDeleted bool, query string) uint64 {
	h := sha256.New()
	var b [3]byte
	b[0] = byte(o.Field)
	if o.Desc {
		b[1] = 1
	}
	if showDeleted {
		b[2] = 1
	}
	h.Write(b[:])
	h.Write([]byte(filter))
	if tenant != DefaultTenant {
		// A filter that parses holds no NUL: the tenant cannot be
		// confused with the end of a filter.
		h.Write([]byte{0})
		h.Write([]byte(tenant))
	}
	if query != "" {
		// A search's order is OrderRank, which no list without one has.
		h.Write([]byte{1})
		h.Write([]byte(query))
	}
	return binary.BigEndian.Uint64(h.Sum(nil))
}

// mac signs a ListUsers token.
func (p pageTokens) mac(msg []byte) []byte { return p.sign("usersd.users.v1.ListUsers", msg) }

// sign returns the MAC of msg for the list named by domain, so that a
// token of one list is never valid for another.
func (p pageTokens) sign(domain string, msg []byte) []byte {
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(domain))
	m.Write(msg)
	return m.Sum(nil)[:pageTokenMACSize]
}

func (p pageTokens) encode(digest uint64, o OrderField, c Cursor) string {
	id, _ := uuid.Parse(c.ID) // ids in a cursor come from the store: always valid
	b := make([]byte, 0, 1+8+8+2+len(c.EmailKey)+16+pageTokenMACSize)
	b = append(b, pageTokenVersion)
	b = binary.BigEndian.AppendUint64(b, digest)
	key := c.CreateTime.UnixMicro()
	if o == OrderRank {
		key = int64(c.Rank)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(key))
	b = binary.BigEndian.AppendUint16(b, uint16(len(c.EmailKey)))
	b = append(b, c.EmailKey...)
	b = append(b, id[:]...)
	b = append(b, p.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

var errBadToken = errors.New("malformed page token")

// decode returns the cursor in token, checking its signature and that it
// was made for the query with the given digest.
func (p pageTokens) decode(token string, digest uint64, o OrderField) (*Cursor, error) {
	// The decoder skips CR and LF; refuse them so that a cursor has one token.
	if strings.ContainsAny(token, "\r\n") {
		return nil, errBadToken
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) < 1+8+8+2+16+pageTokenMACSize || b[0] != pageTokenVersion {
		return nil, errBadToken
	}
	body, sum := b[:len(b)-pageTokenMACSize], b[len(b)-pageTokenMACSize:]
	if !hmac.Equal(sum, p.mac(body)) {
		return nil, errBadToken
	}
	if binary.BigEndian.Uint64(body[1:]) != digest {
		return nil, errors.New("page token belongs to a list call with other filter, order_by or show_deleted")
	}
	micros := int64(binary.BigEndian.Uint64(body[9:]))
	n := int(binary.BigEndian.Uint16(body[17:]))
	if len(body) != 19+n+16 {
		return nil, errBadToken
	}
	c := &Cursor{
		CreateTime: time.UnixMicro(micros).UTC(),
		EmailKey:   string(body[19 : 19+n]),
		ID:         formatUUID(body[19+n:]),
	}
	if o == OrderRank {
		if micros < RankExact || micros > RankSubstring {
			return nil, errBadToken
		}
		c.CreateTime, c.Rank = time.Time{}, int(micros)
	}
	return c, nil
}
