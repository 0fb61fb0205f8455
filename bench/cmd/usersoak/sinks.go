package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

// eventSet is the event ids a sink has seen, with its repeats and the
// longest time from an event to its arrival in the current window.
type eventSet struct {
	mu      sync.Mutex
	ids     map[string]struct{}
	repeats int
	lag     time.Duration // longest in the window
	bad     int           // deliveries refused (bad signature or body)
}

func newEventSet() *eventSet { return &eventSet{ids: map[string]struct{}{}} }

func (s *eventSet) add(id string, lag time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.ids[id]; ok {
		s.repeats++
		return
	}
	s.ids[id] = struct{}{}
	s.lag = max(s.lag, lag)
}

// counts returns the events seen, the repeats, and the window's longest
// lag, and starts a new window.
func (s *eventSet) counts() (n, repeats int, lag time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, repeats, lag = len(s.ids), s.repeats, s.lag
	s.lag = 0
	return n, repeats, lag
}

// missing returns how many ids of s other lacks.
func (s *eventSet) missing(other *eventSet) int {
	s.mu.Lock()
	ids := make([]string, 0, len(s.ids))
	for id := range s.ids {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	other.mu.Lock()
	defer other.mu.Unlock()
	n := 0
	for _, id := range ids {
		if _, ok := other.ids[id]; !ok {
			n++
		}
	}
	return n
}

// receiver is the webhook endpoint: an HTTP server on loopback that checks
// each delivery's Standard Webhooks signature and records its event.
type receiver struct {
	set *eventSet
	srv *http.Server
	lis net.Listener

	mu  sync.Mutex
	key []byte // the subscription's secret, once it is known
}

func newReceiver() (*receiver, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{set: newEventSet(), lis: lis}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	return r, nil
}

func (r *receiver) url() string { return "http://" + r.lis.Addr().String() + "/hook" }

// serve serves until ctx ends, then shuts the server down.
func (r *receiver) serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- r.srv.Serve(r.lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := r.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

func (r *receiver) setSecret(secret string) error {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return fmt.Errorf("webhook secret: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.key = key
	return nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	r.mu.Lock()
	key := r.key
	r.mu.Unlock()
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	ok := key != nil && id != ""
	if ok {
		ok = false
		for _, sig := range strings.Fields(req.Header.Get("webhook-signature")) {
			if hmac.Equal([]byte(sig), []byte(want)) {
				ok = true
			}
		}
	}
	if !ok {
		r.set.mu.Lock()
		r.set.bad++
		r.set.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var lag time.Duration
	var sec int64
	if _, err := fmt.Sscan(ts, &sec); err == nil {
		lag = time.Since(time.Unix(sec, 0))
	}
	r.set.add(id, lag)
	w.WriteHeader(http.StatusNoContent)
}

// feed is the consumer of the events feed: WatchUserEvents from its last
// cursor, a new stream every reconnect, so the server's stream set-up and
// tear-down is part of the load.
type feed struct {
	set       *eventSet
	client    usersv1.UserServiceClient
	reconnect time.Duration

	mu      sync.Mutex
	streams int
	errs    map[string]int
	// resumed counts the streams the server ended with UNAVAILABLE (a
	// replica draining, a connection past its age, the database away): a
	// consumer resumes from its cursor, as docs/api.md tells clients to.
	resumed map[string]int
	cursor  string
}

func newFeed(client usersv1.UserServiceClient, reconnect time.Duration) *feed {
	return &feed{set: newEventSet(), client: client, reconnect: reconnect, errs: map[string]int{}, resumed: map[string]int{}}
}

// run follows the feed until ctx ends.
func (f *feed) run(ctx context.Context) error {
	for ctx.Err() == nil {
		err := f.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			f.mu.Lock()
			if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
				f.resumed[s.Message()]++
			} else {
				f.errs[err.Error()]++
			}
			f.mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	return nil
}

// stream reads one stream for f.reconnect, then cancels it (the server
// sees the client go away); a stream that ends so is not an error.
func (f *feed) stream(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := time.AfterFunc(f.reconnect, cancel)
	defer stop.Stop()
	f.mu.Lock()
	after := f.cursor
	f.streams++
	f.mu.Unlock()
	st, err := f.client.WatchUserEvents(sctx, &usersv1.WatchUserEventsRequest{After: after})
	if err != nil {
		return streamErr(err)
	}
	for {
		ev, err := st.Recv()
		if err != nil {
			if sctx.Err() != nil && status.Code(err) == codes.Canceled {
				return nil
			}
			return streamErr(err)
		}
		f.set.add(ev.GetId(), time.Since(ev.GetTime().AsTime()))
		f.mu.Lock()
		f.cursor = ev.GetCursor()
		f.mu.Unlock()
	}
}

// streamErr keeps a stream's gRPC status whole, so that run can tell the
// ends to resume after from failures.
func streamErr(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return grpcErr("WatchUserEvents", err)
}

func (f *feed) errors() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return counted(f.errs)
}

// resumes returns the streams ended with UNAVAILABLE, by message, and how
// many there were.
func (f *feed) resumes() ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, v := range f.resumed {
		n += v
	}
	return counted(f.resumed), n
}

func counted(m map[string]int) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%d × %s", v, k))
	}
	return out
}
