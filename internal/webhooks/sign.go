package webhooks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SecretPrefix starts every signing secret, as Standard Webhooks has it.
const SecretPrefix = "whsec_"

// Limits of a signing secret's key, in bytes: Standard Webhooks asks for at
// least 24 and at most 64 random bytes. NewSecret makes 32.
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
	newSecretBytes = 32
)

// NewSecret returns a new signing secret: "whsec_" and the standard base64
// (padded) of 32 bytes from crypto/rand. Show it to the target's owner
// once, and keep it as a credential: anyone who has it can sign webhooks.
func NewSecret() string {
	key := make([]byte, newSecretBytes)
	rand.Read(key) // never fails: it crashes the program instead
	return SecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// ParseSecret returns the key of a secret that NewSecret made, or any
// "whsec_" secret of 24 to 64 bytes in standard base64. Its errors wrap
// ErrInvalidTarget and never quote the secret.
func ParseSecret(s string) ([]byte, error) {
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("%w: signing secret: must start with %q", ErrInvalidTarget, SecretPrefix)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return nil, fmt.Errorf("%w: signing secret: not standard base64 after %q", ErrInvalidTarget, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: signing secret: %d bytes, want %d to %d", ErrInvalidTarget, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// Sign returns the webhook-signature header of the message id sent at ts
// with body: "v1,<base64 HMAC-SHA256 of "<id>.<unix seconds>.<body>">" for
// each secret, in their order, separated by spaces. During a rotation pass
// both the new and the old secret; receivers accept the message if any
// signature verifies with the secret they hold. It fails if there is no
// secret or one does not parse.
func Sign(id string, ts time.Time, body []byte, secrets []string) (string, error) {
	keys, err := parseSecrets(secrets)
	if err != nil {
		return "", err
	}
	return sign(id, ts.Unix(), body, keys), nil
}

func parseSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no signing secret", ErrInvalidTarget)
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		keys[i] = k
	}
	return keys, nil
}

func sign(id string, unix int64, body []byte, keys [][]byte) string {
	var b strings.Builder
	for i, key := range keys {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write(strconv.AppendInt(nil, unix, 10))
		m.Write([]byte{'.'})
		m.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return b.String()
}
