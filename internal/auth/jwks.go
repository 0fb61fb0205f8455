package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/rs/zerolog"
)

// minRSABits is the smallest RSA modulus accepted in a JWKS.
const minRSABits = 2048

// keySet is the verification keys of a JWKS, by key id, kept fresh by run.
type keySet struct {
	fetch  func(context.Context) ([]byte, error)
	every  time.Duration // between periodic refreshes
	minGap time.Duration // least time between the starts of two refreshes asked by verify
	log    zerolog.Logger
	kick   chan struct{} // asks run for a refresh; capacity 1

	mu      sync.Mutex
	keys    map[string]jose.JSONWebKey
	last    time.Time     // when the last read started
	pending chan struct{} // closed when the refresh a verify asked for ends
	done    bool          // run has returned
}

// load reads the JWKS and, when it holds a usable key, replaces the keys.
// Its caller sets last, when the read starts.
func (s *keySet) load(ctx context.Context) error {
	raw, err := s.fetch(ctx)
	if err != nil {
		return err
	}
	keys, err := parseJWKS(raw)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	return nil
}

// run refreshes the keys every s.every and when verify asks, until ctx is
// done. It is the only goroutine of a keySet.
func (s *keySet) run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	defer func() {
		s.mu.Lock()
		s.done = true
		if s.pending != nil {
			close(s.pending)
			s.pending = nil
		}
		s.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.kick:
			s.mu.Lock()
			asked := s.pending != nil
			s.mu.Unlock()
			if !asked { // a periodic refresh has served the request
				continue
			}
		}
		// The read starts now, in the same critical section that takes the
		// pending request: a verify that comes between the two would find
		// neither a pending request nor a recent start, and ask again.
		s.mu.Lock()
		waiting := s.pending
		s.pending = nil
		s.last = time.Now()
		s.mu.Unlock()
		fctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		if err := s.load(fctx); err != nil && ctx.Err() == nil {
			s.log.Warn().Err(err).Msg("refreshing the JWKS failed; keeping the keys known")
		}
		cancel()
		if waiting != nil {
			close(waiting)
		}
	}
}

// key returns the key with the id kid. When there is none, it asks run for
// a refresh unless one started less than s.minGap ago, and waits for it
// while ctx allows.
func (s *keySet) key(ctx context.Context, kid string) (jose.JSONWebKey, bool) {
	s.mu.Lock()
	k, ok := s.keys[kid]
	if ok {
		s.mu.Unlock()
		return k, true
	}
	wait := s.pending
	if wait == nil && !s.done && time.Since(s.last) >= s.minGap {
		wait = make(chan struct{})
		s.pending = wait
		select {
		case s.kick <- struct{}{}:
		default: // a kick is queued already; it serves this request too
		}
	}
	s.mu.Unlock()
	if wait == nil {
		return jose.JSONWebKey{}, false
	}
	select {
	case <-wait:
	case <-ctx.Done():
		return jose.JSONWebKey{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok = s.keys[kid]
	return k, ok
}

// parseJWKS returns the keys of a JWKS that can verify RS256, ES256 or
// EdDSA signatures, by key id. Keys without an id, for encryption only, of
// another kind (symmetric keys included), or too weak are left out; the
// document is an error when none is left, or when two keys share an id.
func parseJWKS(raw []byte) (map[string]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("not a JWKS: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(doc.Keys))
	var skipped []error
	for i, rk := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(rk); err != nil {
			skipped = append(skipped, fmt.Errorf("keys[%d]: %w", i, err))
			continue
		}
		if err := usable(k); err != nil {
			skipped = append(skipped, fmt.Errorf("keys[%d] (kid %q): %w", i, k.KeyID, err))
			continue
		}
		if _, dup := keys[k.KeyID]; dup {
			return nil, fmt.Errorf("two keys with id %q", k.KeyID)
		}
		keys[k.KeyID] = k.Public()
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no usable signing key: %w", errors.Join(append(skipped, errors.New("no keys"))...))
	}
	return keys, nil
}

// usable says why k cannot verify tokens, or returns nil.
func usable(k jose.JSONWebKey) error {
	if k.KeyID == "" {
		return errors.New("no key id")
	}
	if k.Use != "" && k.Use != "sig" {
		return fmt.Errorf("use %q", k.Use)
	}
	k = k.Public()
	if !k.IsPublic() {
		return errors.New("not an asymmetric key")
	}
	want := algorithmOf(k.Key)
	if want == "" {
		return errors.New("no supported algorithm for this key")
	}
	if k.Algorithm != "" && k.Algorithm != string(want) {
		return fmt.Errorf("alg %q: want %s for this key", k.Algorithm, want)
	}
	return nil
}

// algorithmOf returns the one signature algorithm accepted for key, or "":
// RS256 for RSA keys of at least 2048 bits, ES256 for P-256 keys, EdDSA
// for Ed25519 keys.
func algorithmOf(key any) jose.SignatureAlgorithm {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() >= minRSABits {
			return jose.RS256
		}
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return jose.ES256
		}
	case ed25519.PublicKey:
		return jose.EdDSA
	}
	return ""
}

// readFile reads a JWKS file of at most MaxJWKSBytes.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

// readURL reads a JWKS of at most MaxJWKSBytes from url with client.
func readURL(ctx context.Context, client *http.Client, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return readLimited(resp.Body)
}

func readLimited(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxJWKSBytes {
		return nil, fmt.Errorf("JWKS larger than %d bytes", MaxJWKSBytes)
	}
	return b, nil
}
