package ratelimit_test

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/usersd/usersd/internal/ratelimit"
)

// inprocAddr is the peer address of calls on an in-process channel.
type inprocAddr struct{}

func (inprocAddr) Network() string { return "inproc" }
func (inprocAddr) String() string  { return "0" }

func peerCtx(addr net.Addr, kv ...string) context.Context {
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: addr})
	if len(kv) > 0 {
		ctx = metadata.NewIncomingContext(ctx, metadata.Pairs(kv...))
	}
	return ctx
}

func TestPeerKey(t *testing.T) {
	tcp := func(s string) net.Addr {
		a, err := net.ResolveTCPAddr("tcp", s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"no peer", context.Background(), ""},
		{"IPv4", peerCtx(tcp("192.0.2.1:5000")), "ip:192.0.2.1"},
		{"port ignored", peerCtx(tcp("192.0.2.1:5001")), "ip:192.0.2.1"},
		{"IPv4-mapped IPv6", peerCtx(tcp("[::ffff:192.0.2.1]:5000")), "ip:192.0.2.1"},
		{"IPv6 by /64", peerCtx(tcp("[2001:db8:a:b:1:2:3:4]:5000")), "ip:2001:db8:a:b::/64"},
		{"IPv6 zone dropped", peerCtx(tcp("[fe80::1%eth0]:5000")), "ip:fe80::/64"},
		{"x-forwarded-for ignored over the network",
			peerCtx(tcp("192.0.2.1:5000"), "x-forwarded-for", "198.51.100.1"), "ip:192.0.2.1"},
		{"other address types", peerCtx(&net.UDPAddr{IP: net.ParseIP("192.0.2.2"), Port: 53}), "ip:192.0.2.2"},
		{"unix socket", peerCtx(&net.UnixAddr{Name: "/run/usersd.sock", Net: "unix"}), ""},
		{"gateway: the HTTP client",
			peerCtx(inprocAddr{}, "x-forwarded-for", "203.0.113.9"), "ip:203.0.113.9"},
		{"gateway: the last entry, appended by the gateway",
			peerCtx(inprocAddr{}, "x-forwarded-for", "198.51.100.1, 10.0.0.1,203.0.113.9"), "ip:203.0.113.9"},
		{"gateway: IPv6 by /64",
			peerCtx(inprocAddr{}, "x-forwarded-for", "2001:db8::1"), "ip:2001:db8::/64"},
		{"gateway: no x-forwarded-for", peerCtx(inprocAddr{}), ""},
		{"gateway: not an address", peerCtx(inprocAddr{}, "x-forwarded-for", "203.0.113.9, nonsense"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ratelimit.PeerKey(tt.ctx); got != tt.want {
				t.Errorf("PeerKey() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSubjectKey(t *testing.T) {
	key := ratelimit.SubjectKey(subject)
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}
	tests := []struct {
		name string
		ctx  context.Context
		want string
	}{
		{"subject", peerCtx(addr, testSubject, "alice"), "sub:alice"},
		{"subject spelt like an address", peerCtx(addr, testSubject, "ip:192.0.2.1"), "sub:ip:192.0.2.1"},
		{"no subject: the address", peerCtx(addr), "ip:192.0.2.1"},
		{"neither", context.Background(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := key(tt.ctx); got != tt.want {
				t.Errorf("key() = %q, want %q", got, tt.want)
			}
		})
	}
}
