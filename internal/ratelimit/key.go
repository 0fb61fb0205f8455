package ratelimit

import (
	"context"
	"net"
	"net/netip"
	"strings"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/usersd/usersd/internal/inproc"
)

// mdForwardedFor is the metadata key under which the gateway passes the
// HTTP client's address, after any X-Forwarded-For values the client sent.
const mdForwardedFor = "x-forwarded-for"

// PeerKey keys a call by its caller's IP address: "ip:" and an IPv4
// address, or an IPv6 address's /64 prefix, since one host commonly holds a
// whole /64. For calls from the in-process HTTP gateway (a peer on the
// inproc.Network) it is the address of the HTTP client, the last
// x-forwarded-for entry, which the gateway appends from the connection
// itself; entries the client sent are ignored, and so is x-forwarded-for on
// calls over the network. Behind a proxy, the address is the proxy's. PeerKey returns "" when the call has no IP peer.
func PeerKey(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	var a netip.Addr
	switch addr := p.Addr.(type) {
	case *net.TCPAddr:
		a, _ = netip.AddrFromSlice(addr.IP)
	default:
		if addr.Network() == inproc.Network {
			return forwardedKey(ctx)
		}
		ap, err := netip.ParseAddrPort(addr.String())
		if err != nil {
			return ""
		}
		a = ap.Addr()
	}
	return ipKey(a)
}

// SubjectKey returns a key function that keys a call by its subject, as
// subject reports it, or by PeerKey when subject returns "". Subjects are
// prefixed "sub:", so a subject spelt like an address shares no bucket
// with that address.
func SubjectKey(subject func(ctx context.Context) string) func(ctx context.Context) string {
	return func(ctx context.Context) string {
		if s := subject(ctx); s != "" {
			return "sub:" + s
		}
		return PeerKey(ctx)
	}
}

// fromGateway reports whether the call came from the in-process gateway.
func fromGateway(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	return ok && p.Addr != nil && p.Addr.Network() == inproc.Network
}

// forwardedKey keys a gateway call by the last x-forwarded-for entry.
func forwardedKey(ctx context.Context) string {
	vs := metadata.ValueFromIncomingContext(ctx, mdForwardedFor)
	if len(vs) == 0 {
		return ""
	}
	last := vs[len(vs)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	a, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil {
		return ""
	}
	return ipKey(a)
}

// ipKey is the key of address a: IPv4 whole, IPv6 by its /64.
func ipKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if !a.IsValid() {
		return ""
	}
	b := append(make([]byte, 0, 48), "ip:"...) // on the stack: one allocation
	if a.Is4() {
		b = a.AppendTo(b)
	} else {
		p, _ := a.Prefix(64)
		b = p.AppendTo(b)
	}
	return string(b)
}
