package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// The JSON encoding of usersd's gateway.
var (
	marshal   = protojson.MarshalOptions{EmitUnpopulated: true}
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: false}
)

// maxBody is usersd's default --max-body-bytes.
const maxBody = 1 << 20

// newHandler returns the HTTP/JSON API on db: the routes of users.proto
// for the four calls, on a plain ServeMux.
func newHandler(db store) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /v1/users/{id}", func(w http.ResponseWriter, r *http.Request) {
		u, err := db.get(r.Context(), r.PathValue("id"))
		if err != nil {
			httpError(w, err)
			return
		}
		w.Header().Set("ETag", `"`+u.GetEtag()+`"`)
		writeJSON(w, http.StatusOK, u)
	})
	mux.HandleFunc("POST /v1/users", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var in usersv1.User
		if err := unmarshal.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u, err := db.create(r.Context(), &in)
		if err != nil {
			httpError(w, err)
			return
		}
		w.Header().Set("ETag", `"`+u.GetEtag()+`"`)
		w.Header().Set("Location", "/v1/users/"+u.GetId())
		writeJSON(w, http.StatusCreated, u)
	})
	mux.HandleFunc("GET /v1/users", func(w http.ResponseWriter, r *http.Request) {
		size := 50
		if s := r.URL.Query().Get("pageSize"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			size = min(max(n, 1), 1000)
		}
		res, err := listPage(r.Context(), db, size)
		if err != nil {
			httpError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /v1/users:batchGet", func(w http.ResponseWriter, r *http.Request) {
		res, err := batchGet(r.Context(), db, r.URL.Query()["ids"])
		if err != nil {
			httpError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, m proto.Message) {
	b, err := marshal.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

func httpError(w http.ResponseWriter, err error) {
	if errors.Is(err, errNotFound) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

// listPage returns the first page of size users and the token of the next.
func listPage(ctx context.Context, db store, size int) (*usersv1.ListUsersResponse, error) {
	us, err := db.list(ctx, size+1)
	if err != nil {
		return nil, err
	}
	res := &usersv1.ListUsersResponse{Users: us}
	if len(us) > size {
		res.Users = us[:size]
		res.NextPageToken = pageToken(us[size-1])
	}
	return res, nil
}

func batchGet(ctx context.Context, db store, ids []string) (*usersv1.BatchGetUsersResponse, error) {
	found, err := db.batchGet(ctx, ids)
	if err != nil {
		return nil, err
	}
	us, err := inOrder(ids, found)
	if err != nil {
		return nil, err
	}
	return &usersv1.BatchGetUsersResponse{Users: us}, nil
}

// grpcServer is users.v1.UserService on db, for the four calls.
type grpcServer struct {
	usersv1.UnimplementedUserServiceServer
	db store
}

func grpcError(err error) error {
	if errors.Is(err, errNotFound) {
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func (s *grpcServer) GetUser(ctx context.Context, req *usersv1.GetUserRequest) (*usersv1.User, error) {
	u, err := s.db.get(ctx, req.GetId())
	if err != nil {
		return nil, grpcError(err)
	}
	return u, nil
}

func (s *grpcServer) CreateUser(ctx context.Context, req *usersv1.CreateUserRequest) (*usersv1.User, error) {
	u, err := s.db.create(ctx, req.GetUser())
	if err != nil {
		return nil, grpcError(err)
	}
	return u, nil
}

func (s *grpcServer) ListUsers(ctx context.Context, req *usersv1.ListUsersRequest) (*usersv1.ListUsersResponse, error) {
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 50
	}
	res, err := listPage(ctx, s.db, min(size, 1000))
	if err != nil {
		return nil, grpcError(err)
	}
	return res, nil
}

func (s *grpcServer) BatchGetUsers(ctx context.Context, req *usersv1.BatchGetUsersRequest) (*usersv1.BatchGetUsersResponse, error) {
	res, err := batchGet(ctx, s.db, req.GetIds())
	if err != nil {
		return nil, grpcError(err)
	}
	return res, nil
}
