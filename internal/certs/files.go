package certs

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, the files are checked for
// changes when no interval is given.
const DefaultCheckInterval = time.Second

// files is a value parsed from files, parsed again when they change.
//
// There is no goroutine: get checks the files' identity, size and
// modification time when the last check is older than the interval, in the
// caller (a TLS handshake), and one caller at a time; the others go on with
// the current value. A change is read and parsed once; if that fails the
// current value stays, and the files are tried again only when they change
// again (a half-written file changes when its writer finishes).
type files[T any] struct {
	paths    []string
	parse    func(data [][]byte) (T, error)
	interval time.Duration
	onReload func(v T, err error)

	cur  atomic.Pointer[T]
	next atomic.Int64 // UnixNano of the next check

	mu   sync.Mutex    // one check at a time
	seen []os.FileInfo // the files at the last load; nil for a missing one
}

// loadFiles reads and parses paths for the first time; it fails if they
// are broken. onReload, if not nil, is called after every later load,
// with the error if the new files were refused.
func loadFiles[T any](paths []string, interval time.Duration, parse func([][]byte) (T, error), onReload func(T, error)) (*files[T], error) {
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	f := &files[T]{paths: paths, parse: parse, interval: interval, onReload: onReload}
	f.seen = f.stat()
	v, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cur.Store(&v)
	f.next.Store(time.Now().Add(interval).UnixNano())
	return f, nil
}

// get returns the current value, after loading the files again if the
// check is due and finds them changed.
func (f *files[T]) get() T {
	if now := time.Now(); now.UnixNano() >= f.next.Load() && f.mu.TryLock() {
		f.check(now)
		f.mu.Unlock()
	}
	return *f.cur.Load()
}

// check loads the files if they changed since the last load. The caller
// holds mu.
func (f *files[T]) check(now time.Time) {
	f.next.Store(now.Add(f.interval).UnixNano())
	// Stat before reading: a write that lands after the read changes
	// the files again, and the next check sees it.
	seen := f.stat()
	if slices.EqualFunc(seen, f.seen, sameFile) {
		return
	}
	f.seen = seen
	v, err := f.load()
	if err == nil {
		f.cur.Store(&v)
	}
	if f.onReload != nil {
		f.onReload(v, err)
	}
}

func (f *files[T]) stat() []os.FileInfo {
	seen := make([]os.FileInfo, len(f.paths))
	for i, p := range f.paths {
		seen[i], _ = os.Stat(p) // a missing file shows as nil; load reports it
	}
	return seen
}

func (f *files[T]) load() (T, error) {
	data := make([][]byte, len(f.paths))
	for i, p := range f.paths {
		var err error
		if data[i], err = os.ReadFile(p); err != nil {
			var zero T
			return zero, err
		}
	}
	return f.parse(data)
}

// sameFile reports whether a and b are the same file, unchanged. Following
// symbolic links, a Kubernetes secret update (a new directory, swapped in
// by renaming a link) shows as other files.
func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// KeyPair is a certificate and its private key read from PEM files, and
// read again when the files change, so a rotated certificate is used
// without a restart.
type KeyPair struct {
	f *files[*tls.Certificate]
}

// LoadKeyPair reads the PEM certificate chain (leaf first) of certFile and
// the private key of keyFile, which must match. Certificate checks the files
// for changes at most every checkInterval (0 means DefaultCheckInterval)
// and switches to the new pair once it loads; until then, and if it never
// does (a half-written file, a key that does not match the certificate), it
// keeps the last good pair. onError, if not nil, gets the error of each
// new pair that failed to load.
func LoadKeyPair(certFile, keyFile string, checkInterval time.Duration, onError func(error)) (*KeyPair, error) {
	f, err := loadFiles([]string{certFile, keyFile}, checkInterval, parseKeyPair(certFile, keyFile), func(_ *tls.Certificate, err error) {
		if err != nil && onError != nil {
			onError(err)
		}
	})
	if err != nil {
		return nil, err
	}
	return &KeyPair{f: f}, nil
}

// Certificate returns the current certificate; its Leaf is set.
func (k *KeyPair) Certificate() *tls.Certificate { return k.f.get() }

// parseKeyPair parses a certificate chain and its private key.
func parseKeyPair(certFile, keyFile string) func([][]byte) (*tls.Certificate, error) {
	return func(data [][]byte) (*tls.Certificate, error) {
		if err := complete(data[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", certFile, err)
		}
		if err := complete(data[1]); err != nil {
			return nil, fmt.Errorf("%s: %w", keyFile, err)
		}
		c, err := tls.X509KeyPair(data[0], data[1])
		if err != nil {
			return nil, fmt.Errorf("%s, %s: %w", certFile, keyFile, err)
		}
		if c.Leaf == nil {
			if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
				return nil, fmt.Errorf("%s: %w", certFile, err)
			}
		}
		return &c, nil
	}
}

// parsePool parses a bundle of PEM CA certificates.
func parsePool(file string) func([][]byte) (*x509.CertPool, error) {
	return func(data [][]byte) (*x509.CertPool, error) {
		if err := complete(data[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		pool := x509.NewCertPool()
		n := 0
		for rest := data[0]; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			pool.AddCert(c)
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: %w", file, errNoCertificates)
		}
		return pool, nil
	}
}

var errNoCertificates = errors.New("no PEM certificates")

// complete reports an error if data ends in a PEM block cut short, as a
// file caught while being written does. Decoders skip such a block, so a
// bundle cut after its first certificate would otherwise load.
func complete(data []byte) error {
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
	}
	if bytes.Contains(rest, []byte("-----BEGIN")) {
		return errors.New("truncated or malformed PEM block")
	}
	return nil
}

// LoadCAs reads a bundle of PEM CA certificates, once. Unlike
// x509.CertPool.AppendCertsFromPEM it refuses a file with a malformed or
// truncated certificate.
func LoadCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parsePool(file)([][]byte{data})
}
