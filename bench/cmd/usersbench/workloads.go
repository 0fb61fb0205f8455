package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/usersd/usersd/bench/internal/load"
)

var createSeq atomic.Int64

// drive runs one workload against srv for d: call over api with conc
// requests in flight, or, with rate set, at that many requests per second.
func (h *harness) drive(ctx context.Context, st *store, srv *server, api, call string, conc int, d time.Duration, rate float64) (load.Result, error) {
	switch api {
	case "http":
		t, err := h.httpTarget(st, srv, call)
		if err != nil {
			return load.Result{}, err
		}
		return load.RunHTTP(ctx, h.client, t, load.HTTPConfig{Concurrency: conc, Duration: d, Rate: rate})
	case "grpc":
		method, data, err := h.grpcData(st, call)
		if err != nil {
			return load.Result{}, err
		}
		return load.RunGHZ(ctx, load.GHZConfig{
			Bin: h.ghz, Addr: srv.grpcAddr, Call: "users.v1.UserService." + method, Data: data,
			Concurrency: conc, Connections: 1, Duration: d, RPS: int(rate), Dir: h.work,
		})
	}
	return load.Result{}, fmt.Errorf("unknown api %q", api)
}

// httpTarget returns the HTTP requests of call: the routes of users.proto.
func (h *harness) httpTarget(st *store, srv *server, call string) (load.HTTPTarget, error) {
	base := "http://" + srv.httpAddr
	switch call {
	case "GetUser":
		urls := make([]string, len(st.ids))
		for i, id := range st.ids {
			urls[i] = base + "/v1/users/" + id
		}
		return load.HTTPTarget{Method: http.MethodGet, URL: func(i int) string { return urls[i%len(urls)] }, Want: http.StatusOK}, nil
	case "CreateUser":
		// A new address per request: creates never conflict.
		prefix := fmt.Sprintf("c%s-%d", h.nonce, createSeq.Add(1))
		return load.HTTPTarget{
			Method: http.MethodPost,
			URL:    func(int) string { return base + "/v1/users" },
			Body: func(i int) []byte {
				return fmt.Appendf(nil, `{"email":"%s-%d@bench.example","displayName":"Bench User %d","labels":{"team":"bench"}}`, prefix, i, i)
			},
			Want: http.StatusCreated,
		}, nil
	case "ListUsers":
		return load.HTTPTarget{Method: http.MethodGet, URL: func(int) string { return base + "/v1/users?pageSize=50" }, Want: http.StatusOK}, nil
	case "BatchGetUsers":
		urls := make([]string, len(st.batches))
		for i, ids := range st.batches {
			q := url.Values{"ids": ids}
			urls[i] = base + "/v1/users:batchGet?" + q.Encode()
		}
		return load.HTTPTarget{Method: http.MethodGet, URL: func(i int) string { return urls[i%len(urls)] }, Want: http.StatusOK}, nil
	}
	return load.HTTPTarget{}, fmt.Errorf("unknown call %q", call)
}

// grpcData returns the method and the ghz data of call: arrays are sent
// round-robin; CreateUser's address is a template ghz fills per request.
func (h *harness) grpcData(st *store, call string) (string, []byte, error) {
	var v any
	switch call {
	case "GetUser":
		reqs := make([]map[string]string, len(st.ids))
		for i, id := range st.ids {
			reqs[i] = map[string]string{"id": id}
		}
		v = reqs
	case "CreateUser":
		prefix := fmt.Sprintf("g%s-%d", h.nonce, createSeq.Add(1))
		return call, []byte(`{"user":{"email":"` + prefix + `-{{.RequestNumber}}@bench.example","display_name":"Bench User {{.RequestNumber}}","labels":{"team":"bench"}}}`), nil
	case "ListUsers":
		v = map[string]int{"page_size": 50}
	case "BatchGetUsers":
		reqs := make([]map[string][]string, len(st.batches))
		for i, ids := range st.batches {
			reqs[i] = map[string][]string{"ids": ids}
		}
		v = reqs
	default:
		return "", nil, fmt.Errorf("unknown call %q", call)
	}
	b, err := json.Marshal(v)
	return call, b, err
}
