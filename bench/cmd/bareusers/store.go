package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// errNotFound is what get returns for an unknown id.
var errNotFound = errors.New("user not found")

// store is the SQL of the four calls on one database.
type store interface {
	// get returns the user with the id, deleted or not.
	get(ctx context.Context, id string) (*usersv1.User, error)
	// create inserts a new ACTIVE (or SUSPENDED) user and returns it.
	create(ctx context.Context, in *usersv1.User) (*usersv1.User, error)
	// list returns the first limit users that are not deleted, by
	// create_time then id.
	list(ctx context.Context, limit int) ([]*usersv1.User, error)
	// batchGet returns the users with the ids that exist, in any order.
	batchGet(ctx context.Context, ids []string) ([]*usersv1.User, error)
	close()
}

// The columns of a user, in the order both stores scan them.
const userColumns = "id, email, display_name, state, labels, create_time, update_time, delete_time, revision"

var stateNumbers = map[string]usersv1.User_State{
	"ACTIVE":    usersv1.User_STATE_ACTIVE,
	"SUSPENDED": usersv1.User_STATE_SUSPENDED,
	"DELETED":   usersv1.User_STATE_DELETED,
}

// row is one user as the databases return it, whatever their types.
type row struct {
	id, email, displayName, state string
	labels                        []byte
	createTime, updateTime        time.Time
	deleteTime                    time.Time // zero when NULL
	revision                      int64
}

// user returns the API form of r, with the etag usersd computes.
func (r *row) user() (*usersv1.User, error) {
	u := &usersv1.User{
		Id:          r.id,
		Email:       r.email,
		DisplayName: r.displayName,
		State:       stateNumbers[r.state],
		CreateTime:  timestamppb.New(r.createTime),
		UpdateTime:  timestamppb.New(r.updateTime),
		Etag:        etag(r.id, r.revision),
	}
	if !r.deleteTime.IsZero() {
		u.DeleteTime = timestamppb.New(r.deleteTime)
	}
	if len(r.labels) > 0 && string(r.labels) != "{}" {
		if err := json.Unmarshal(r.labels, &u.Labels); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// etag is usersd's etag of a user: the first 8 bytes of SHA-256 over the id
// and the revision, in hex.
func etag(id string, revision int64) string {
	h := sha256.New()
	h.Write([]byte(id))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(revision))
	h.Write(b[:])
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// newRow returns the row of a user created now from the caller's fields.
func newRow(in *usersv1.User) (*row, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	labels := []byte("{}")
	if len(in.GetLabels()) > 0 {
		if labels, err = json.Marshal(in.GetLabels()); err != nil {
			return nil, err
		}
	}
	state := "ACTIVE"
	if in.GetState() == usersv1.User_STATE_SUSPENDED {
		state = "SUSPENDED"
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &row{
		id: id.String(), email: in.GetEmail(), displayName: in.GetDisplayName(), state: state,
		labels: labels, createTime: now, updateTime: now, revision: 1,
	}, nil
}

// The page token: usersd's layout and signature (version, query digest,
// cursor, HMAC-SHA256 truncated to 16 bytes, base64url), so that a page
// costs what usersd's does.
var (
	tokenKey    = []byte("usersd page token key: set --page-token-key")
	tokenDigest = func() []byte {
		h := sha256.New()
		h.Write([]byte{0, 0, 0}) // order create_time asc, no deleted users, empty filter
		return h.Sum(nil)[:8]
	}()
)

func pageToken(last *usersv1.User) string {
	id, _ := uuid.Parse(last.GetId())
	b := make([]byte, 0, 1+8+8+2+16+16)
	b = append(b, 1)
	b = append(b, tokenDigest...)
	b = binary.BigEndian.AppendUint64(b, uint64(last.GetCreateTime().AsTime().UnixMicro()))
	b = binary.BigEndian.AppendUint16(b, 0)
	b = append(b, id[:]...)
	m := hmac.New(sha256.New, tokenKey)
	m.Write([]byte("usersd.users.v1.ListUsers"))
	m.Write(b)
	b = append(b, m.Sum(nil)[:16]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// inOrder returns the users of ids in the order of ids, or errNotFound.
func inOrder(ids []string, found []*usersv1.User) ([]*usersv1.User, error) {
	byID := make(map[string]*usersv1.User, len(found))
	for _, u := range found {
		byID[u.GetId()] = u
	}
	out := make([]*usersv1.User, len(ids))
	for i, id := range ids {
		u, ok := byID[id]
		if !ok {
			return nil, errNotFound
		}
		out[i] = u
	}
	return out, nil
}
