package auth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/usersd/usersd/internal/auth"
	"github.com/usersd/usersd/internal/auth/authtest"
)

// verify returns the error of verifying a fresh token of key.
func verify(t *testing.T, a *auth.Authenticator, key *authtest.Key) error {
	t.Helper()
	_, err := a.Verify(context.Background(), key.Token(t, authtest.Claims{Subject: "alice"}))
	return err
}

func wantVerify(t *testing.T, a *auth.Authenticator, key *authtest.Key, want error, when string) {
	t.Helper()
	if err := verify(t, a, key); !errors.Is(err, want) || (err != nil) != (want != nil) {
		t.Errorf("%s: Verify(token of %s) err = %v, want %v", when, key.ID, err, want)
	}
}

// TestJWKSFileRotation rotates the keys of a JWKS file: a new key id is
// accepted once it is in the file, without a restart, and a key removed
// from the file is refused after the next refresh.
func TestJWKSFileRotation(t *testing.T) {
	oldKey, newKey := authtest.NewKey(t, jose.RS256), authtest.NewKey(t, jose.ES256)
	path := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, path, oldKey)
	const gap = 20 * time.Millisecond
	a := newAuth(t, auth.Config{JWKS: path, RefreshInterval: time.Hour, MinRefreshInterval: gap})

	wantVerify(t, a, oldKey, nil, "at start")
	time.Sleep(gap)
	wantVerify(t, a, newKey, auth.ErrTokenUnknownKey, "before the new key is published")

	authtest.WriteJWKS(t, path, oldKey, newKey)
	time.Sleep(gap)
	wantVerify(t, a, newKey, nil, "after the new key is published")
	wantVerify(t, a, oldKey, nil, "after the new key is published")

	authtest.WriteJWKS(t, path, newKey)
	wantVerify(t, a, oldKey, nil, "after the old key is removed, before a refresh")
	time.Sleep(gap)
	// A token with a key id nobody knows makes the authenticator read the
	// file again.
	wantVerify(t, a, authtest.NewKey(t, jose.EdDSA), auth.ErrTokenUnknownKey, "unknown key")
	wantVerify(t, a, oldKey, auth.ErrTokenUnknownKey, "after the old key is removed and a refresh")
	wantVerify(t, a, newKey, nil, "after the old key is removed and a refresh")
}

// TestJWKSPeriodicRefresh checks that the JWKS is read again on its own:
// unknown key ids trigger no read here (the minimum interval is an hour).
func TestJWKSPeriodicRefresh(t *testing.T) {
	oldKey, newKey := authtest.NewKey(t, jose.EdDSA), authtest.NewKey(t, jose.RS256)
	path := filepath.Join(t.TempDir(), "jwks.json")
	authtest.WriteJWKS(t, path, oldKey)
	a := newAuth(t, auth.Config{JWKS: path, RefreshInterval: 10 * time.Millisecond, MinRefreshInterval: time.Hour})
	wantVerify(t, a, oldKey, nil, "at start")

	authtest.WriteJWKS(t, path, newKey)
	deadline := time.Now().Add(10 * time.Second)
	for verify(t, a, newKey) != nil || verify(t, a, oldKey) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the rotated JWKS file was not read again within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jwksServer serves a JWKS over TLS and counts the reads.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	doc    []byte
	status int
	reads  atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...*authtest.Key) *jwksServer {
	t.Helper()
	s := &jwksServer{doc: authtest.JWKS(t, keys...), status: http.StatusOK}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reads.Add(1)
		s.mu.Lock()
		doc, status := s.doc, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(doc)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(t *testing.T, status int, keys ...*authtest.Key) {
	t.Helper()
	doc := authtest.JWKS(t, keys...)
	s.mu.Lock()
	s.doc, s.status = doc, status
	s.mu.Unlock()
}

// TestJWKSURLRotation rotates the keys served at an HTTPS URL, checks that
// unknown key ids trigger at most one read per minimum interval, and that
// a failed read keeps the keys known.
func TestJWKSURLRotation(t *testing.T) {
	oldKey, newKey := authtest.NewKey(t, jose.ES256), authtest.NewKey(t, jose.EdDSA)
	srv := newJWKSServer(t, oldKey)
	// A burst of 20 verifications must end within gap of the read before it;
	// under the race detector, with other packages' tests sharing two
	// cores, 250 ms was not always enough.
	const gap = time.Second
	// The tokens of unknown keys are made before the timed part: making 20
	// keys under the race detector on a busy machine can take longer than
	// gap.
	strangers := func() []string {
		toks := make([]string, 20)
		for i := range toks {
			toks[i] = authtest.NewKey(t, jose.ES256).Token(t, authtest.Claims{Subject: "mallory"})
		}
		return toks
	}
	strangers1, strangers2 := strangers(), strangers()
	a := newAuth(t, auth.Config{
		JWKS: srv.URL + "/.well-known/jwks.json", HTTPClient: srv.Client(),
		RefreshInterval: time.Hour, MinRefreshInterval: gap,
	})
	if got := srv.reads.Load(); got != 1 {
		t.Errorf("reads after New = %d, want 1", got)
	}
	wantVerify(t, a, oldKey, nil, "at start")

	// A burst of unknown key ids right after a read reads nothing.
	burst := func(toks []string) {
		var wg sync.WaitGroup
		for _, tok := range toks {
			wg.Go(func() {
				if _, err := a.Verify(context.Background(), tok); !errors.Is(err, auth.ErrTokenUnknownKey) {
					t.Errorf("Verify(stranger) err = %v, want %v", err, auth.ErrTokenUnknownKey)
				}
			})
		}
		wg.Wait()
	}
	burst(strangers1)
	if got := srv.reads.Load(); got != 1 {
		t.Errorf("reads after a burst of unknown key ids within the minimum interval = %d, want 1", got)
	}
	// After the interval, a burst reads once.
	time.Sleep(gap)
	burst(strangers2)
	if got := srv.reads.Load(); got != 2 {
		t.Errorf("reads after a burst of unknown key ids past the minimum interval = %d, want 2", got)
	}

	// A new key is accepted once published.
	srv.serve(t, http.StatusOK, oldKey, newKey)
	time.Sleep(gap)
	wantVerify(t, a, newKey, nil, "after the new key is published")

	// A failed read keeps the keys known.
	srv.serve(t, http.StatusInternalServerError)
	time.Sleep(gap)
	wantVerify(t, a, authtest.NewKey(t, jose.RS256), auth.ErrTokenUnknownKey, "unknown key, while the JWKS fails")
	wantVerify(t, a, oldKey, nil, "after a failed read")
	wantVerify(t, a, newKey, nil, "after a failed read")

	// A removed key is refused after the next read.
	srv.serve(t, http.StatusOK, newKey)
	time.Sleep(gap)
	wantVerify(t, a, authtest.NewKey(t, jose.RS256), auth.ErrTokenUnknownKey, "unknown key")
	wantVerify(t, a, oldKey, auth.ErrTokenUnknownKey, "after the old key is removed")
	wantVerify(t, a, newKey, nil, "after the old key is removed")
}

// TestJWKSURLWaitIsBounded checks that a call waiting for a refresh gives
// up when its context ends, however slow the JWKS server.
func TestJWKSURLWaitIsBounded(t *testing.T) {
	key := authtest.NewKey(t, jose.RS256)
	slow := make(chan struct{})
	var reads atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if reads.Add(1) > 1 {
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		}
		w.Write(authtest.JWKS(t, key))
	}))
	defer srv.Close()
	defer close(slow)
	a := newAuth(t, auth.Config{JWKS: srv.URL, HTTPClient: srv.Client(), RefreshInterval: time.Hour, MinRefreshInterval: time.Millisecond})
	time.Sleep(2 * time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	stranger := authtest.NewKey(t, jose.ES256)
	if _, err := a.Verify(ctx, stranger.Token(t, authtest.Claims{Subject: "mallory"})); !errors.Is(err, auth.ErrTokenUnknownKey) {
		t.Errorf("Verify(unknown key) err = %v, want %v", err, auth.ErrTokenUnknownKey)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Verify waited %v for a refresh, want about 50ms", d)
	}
	// Known keys do not wait for the refresh in flight.
	wantVerify(t, a, key, nil, "while a refresh hangs")
}

func TestJWKSURLErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, "404"},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"keys":[` + strings.Repeat(" ", auth.MaxJWKSBytes) + `]}`))
		}, "larger than"},
		{"redirect to http", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://idp.invalid/jwks", http.StatusFound)
		}, "not https"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewTLSServer(tc.handler)
			defer srv.Close()
			// The default client's redirect policy, with the test server's
			// certificate trusted.
			client := srv.Client()
			client.CheckRedirect = auth.HTTPSOnly
			a, err := auth.New(context.Background(), auth.Config{
				Mode: auth.ModeJWT, Issuer: authtest.Issuer, Audience: authtest.Audience,
				JWKS: srv.URL, HTTPClient: client,
			})
			if err == nil {
				a.Close()
				t.Fatalf("New err = nil, want one about %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New err = %v, want one about %q", err, tc.want)
			}
		})
	}
}
