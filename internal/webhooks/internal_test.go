package webhooks

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestCheckDial checks the dialer's Control on the addresses it is given
// after name resolution.
func TestCheckDial(t *testing.T) {
	tests := []struct {
		address string
		ok      bool
	}{
		{"93.184.216.34:443", true},
		{"[2606:4700:4700::1111]:443", true},
		{"127.0.0.1:80", false},
		{"10.1.2.3:80", false},
		{"169.254.169.254:80", false},
		{"100.100.100.100:80", false},
		{"[::1]:80", false},
		{"[fc00::1]:80", false},
		{"[fe80::1%eth0]:80", false},
		{"[::ffff:10.0.0.1]:80", false},
		{"[64:ff9b::7f00:1]:80", false},
		{"not an address", false},
	}
	for _, tt := range tests {
		err := checkDial("tcp", tt.address, nil)
		if tt.ok && err != nil {
			t.Errorf("checkDial(%q) err = %v, want nil", tt.address, err)
		}
		if !tt.ok && !errors.Is(err, ErrForbiddenAddress) {
			t.Errorf("checkDial(%q) err = %v, want %v", tt.address, err, ErrForbiddenAddress)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"7", 7 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"3599", 3599 * time.Second},
		{"3600", MaxRetryAfter},
		{"99999999999999999999999", MaxRetryAfter},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"Wed, 04 Mar 2026 05:06:37 GMT", 30 * time.Second},
		{"Wed, 04 Mar 2026 05:00:00 GMT", 0},
		{"Thu, 05 Mar 2026 05:06:07 GMT", MaxRetryAfter},
		{"Wednesday, 04-Mar-26 05:07:07 GMT", time.Minute}, // RFC 850
	}
	for _, tt := range tests {
		if got := retryAfter(tt.v, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.v, got, tt.want)
		}
	}
}

// TestKeyedSlots: each key has its own slots, a waiter gives up with its
// context, and a key is forgotten once nobody holds or waits for its
// slots.
func TestKeyedSlots(t *testing.T) {
	k := newKeyedSlots(1)
	releaseA, err := k.acquire(t.Context(), "a")
	if err != nil {
		t.Fatal(err)
	}
	releaseB, err := k.acquire(t.Context(), "b")
	if err != nil {
		t.Fatalf("key b waits for key a: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := k.acquire(ctx, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a second slot of a: err = %v, want %v", err, context.DeadlineExceeded)
	}
	if n := k.len(); n != 2 {
		t.Errorf("%d keys kept, want 2", n)
	}
	releaseA()
	releaseB()
	if n := k.len(); n != 0 {
		t.Errorf("%d keys kept after every slot came back, want 0", n)
	}
	if release, err := k.acquire(t.Context(), "a"); err != nil {
		t.Errorf("a slot of a after it came back: %v", err)
	} else {
		release()
	}
}
