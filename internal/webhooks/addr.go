package webhooks

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// blocked are the address ranges a webhook may not reach unless private
// addresses are allowed: everything that is not a public unicast address
// on the Internet. IPv4-mapped IPv6 addresses are checked as IPv4; NAT64
// and 6to4 addresses by the IPv4 address they embed.
var blocked = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (this network)"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved (IETF protocol assignments)"},
	{netip.MustParsePrefix("192.0.2.0/24"), "reserved (documentation)"},
	{netip.MustParsePrefix("192.88.99.0/24"), "reserved (6to4 relay)"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "reserved (benchmarking)"},
	{netip.MustParsePrefix("198.51.100.0/24"), "reserved (documentation)"},
	{netip.MustParsePrefix("203.0.113.0/24"), "reserved (documentation)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (or broadcast)"},

	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "reserved (IPv4-compatible)"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "reserved (local NAT64)"},
	{netip.MustParsePrefix("100::/64"), "reserved (discard)"},
	{netip.MustParsePrefix("2001::/32"), "reserved (Teredo)"},
	{netip.MustParsePrefix("2001:db8::/32"), "reserved (documentation)"},
	{netip.MustParsePrefix("fc00::/7"), "private (unique local)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "reserved (site-local)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// checkAddr returns an error wrapping ErrForbiddenAddress if a is not a
// public unicast address.
func checkAddr(a netip.Addr) error {
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return fmt.Errorf("%w: invalid address", ErrForbiddenAddress)
	}
	// An address that embeds an IPv4 address reaches it through a gateway.
	embedded := a
	switch {
	case nat64.Contains(a):
		b := a.As16()
		embedded = netip.AddrFrom4([4]byte(b[12:16]))
	case sixToFour.Contains(a):
		b := a.As16()
		embedded = netip.AddrFrom4([4]byte(b[2:6]))
	}
	for _, b := range blocked {
		if b.prefix.Contains(embedded) {
			if embedded != a {
				return fmt.Errorf("%w: %s embeds %s, which is %s", ErrForbiddenAddress, a, embedded, b.what)
			}
			return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, a, b.what)
		}
	}
	return nil
}

// checkDial is the Control of the Deliverer's net.Dialer when private
// addresses are not allowed: it sees the address about to be connected to,
// after name resolution, so a host name that resolves (or is rebound) to a
// private address is refused before any packet is sent to it. The dialer
// tries a host's other addresses, if it has any.
func checkDial(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot parse %q", ErrForbiddenAddress, address)
	}
	return checkAddr(ap.Addr())
}

// ValidateURL reports whether raw may be a webhook's target: an absolute
// http or https URL with a host and no user information. Unless
// allowPrivate, a host that is an IP address must be a public unicast
// address: not loopback, private (RFC 1918), link-local (such as cloud
// metadata services at 169.254.169.254), unspecified, multicast, shared
// (CGNAT, 100.64.0.0/10), unique local IPv6 (fc00::/7) or otherwise
// reserved. Host names are not resolved here, since their addresses may
// change: the Deliverer checks the address it connects to each time.
// Hosts that look like IP addresses in a form other than dotted decimal
// ("127.1", "2130706433", "0x7f.0.0.1"), which some resolvers read as
// addresses, are refused whatever allowPrivate says. Errors wrap
// ErrInvalidTarget, and also ErrForbiddenAddress for refused addresses.
func ValidateURL(raw string, allowPrivate bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a credential
		}
		return fmt.Errorf("%w: URL: %v", ErrInvalidTarget, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: URL scheme %q: must be http or https", ErrInvalidTarget, u.Scheme)
	}
	if u.User != nil {
		return fmt.Errorf("%w: URL must not contain user information", ErrInvalidTarget)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: URL has no host", ErrInvalidTarget)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			return fmt.Errorf("%w: URL host %q: IPv6 zones are not allowed", ErrInvalidTarget, host)
		}
		if allowPrivate {
			return nil
		}
		if err := checkAddr(a); err != nil {
			return fmt.Errorf("%w: URL host: %w", ErrInvalidTarget, err)
		}
		return nil
	}
	if numericLabel(host) {
		return fmt.Errorf("%w: URL host %q looks like an IP address in a non-standard form", ErrInvalidTarget, host)
	}
	return nil
}

// numericLabel reports whether the last label of the host name is a number
// (decimal, or hexadecimal with 0x): no top-level domain is, but
// inet_aton-style addresses are.
func numericLabel(host string) bool {
	last := strings.TrimSuffix(host, ".")
	if i := strings.LastIndexByte(last, '.'); i >= 0 {
		last = last[i+1:]
	}
	hex := false
	if l := strings.ToLower(last); strings.HasPrefix(l, "0x") {
		last, hex = l[2:], true
	}
	if last == "" {
		return hex
	}
	for _, r := range last {
		switch {
		case r >= '0' && r <= '9':
		case hex && r >= 'a' && r <= 'f':
		default:
			return false
		}
	}
	return true
}
