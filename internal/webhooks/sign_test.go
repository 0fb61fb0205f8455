package webhooks_test

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/usersd/usersd/internal/webhooks"
)

func TestNewSecret(t *testing.T) {
	a, b := webhooks.NewSecret(), webhooks.NewSecret()
	if a == b {
		t.Errorf("NewSecret() returned %q twice", a)
	}
	key, err := webhooks.ParseSecret(a)
	if err != nil {
		t.Fatalf("ParseSecret(NewSecret()) err = %v", err)
	}
	if len(key) != 32 {
		t.Errorf("NewSecret() has %d bytes, want 32", len(key))
	}
	if _, err := standardwebhooks.NewWebhook(a); err != nil {
		t.Errorf("standardwebhooks.NewWebhook(NewSecret()) err = %v", err)
	}
}

func TestParseSecret(t *testing.T) {
	b64 := func(n int) string { return base64.StdEncoding.EncodeToString(make([]byte, n)) }
	tests := []struct {
		name   string
		secret string
		ok     bool
	}{
		{"24 bytes", "whsec_" + b64(24), true},
		{"64 bytes", "whsec_" + b64(64), true},
		{"23 bytes", "whsec_" + b64(23), false},
		{"65 bytes", "whsec_" + b64(65), false},
		{"no prefix", b64(32), false},
		{"other prefix", "whsk_" + b64(32), false},
		{"url base64", "whsec_" + base64.URLEncoding.EncodeToString([]byte(strings.Repeat("\xff", 32))), false},
		{"unpadded", "whsec_" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)), false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhooks.ParseSecret(tt.secret)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseSecret(%q) err = %v, want ok %v", tt.secret, err, tt.ok)
			}
			if err != nil && !errors.Is(err, webhooks.ErrInvalidTarget) {
				t.Errorf("ParseSecret(%q) err = %v, want %v", tt.secret, err, webhooks.ErrInvalidTarget)
			}
		})
	}
}

// TestSignVerifies checks Sign against the Standard Webhooks reference
// library: during a rotation each of the secrets verifies the message on
// its own, and another secret does not.
func TestSignVerifies(t *testing.T) {
	oldSecret, newSecret, other := webhooks.NewSecret(), webhooks.NewSecret(), webhooks.NewSecret()
	id, ts, body := "01890a5d-ac96-774b-bcce-b302099a8057", time.Now(), []byte(`{"type":"user.created"}`)
	sig, err := webhooks.Sign(id, ts, body, []string{newSecret, oldSecret})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(sig)); n != 2 {
		t.Errorf("Sign() = %q: %d signatures, want 2", sig, n)
	}
	h := http.Header{}
	h.Set(standardwebhooks.HeaderWebhookID, id)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, sig)
	for _, s := range []string{newSecret, oldSecret} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("Verify() with one of the signing secrets: %v", err)
		}
		if err := wh.Verify(append(body, ' '), h); err == nil {
			t.Errorf("Verify() of a changed body succeeded")
		}
	}
	wh, _ := standardwebhooks.NewWebhook(other)
	if err := wh.Verify(body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
		t.Errorf("Verify() with another secret err = %v, want %v", err, standardwebhooks.ErrNoMatchingSignature)
	}

	if _, err := webhooks.Sign(id, ts, body, nil); !errors.Is(err, webhooks.ErrInvalidTarget) {
		t.Errorf("Sign(no secrets) err = %v, want %v", err, webhooks.ErrInvalidTarget)
	}
}
