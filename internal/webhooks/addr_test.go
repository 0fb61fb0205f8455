package webhooks_test

import (
	"errors"
	"testing"

	"github.com/usersd/usersd/internal/webhooks"
)

func TestValidateURL(t *testing.T) {
	var (
		invalid   = webhooks.ErrInvalidTarget
		forbidden = webhooks.ErrForbiddenAddress
	)
	tests := []struct {
		name         string
		url          string
		allowPrivate bool
		want         error // nil, or an error the result wraps
	}{
		{"https host", "https://hooks.example.com/usersd?token=x", false, nil},
		{"http host and port", "http://hooks.example.com:8080/", false, nil},
		{"public IPv4", "http://93.184.216.34/hook", false, nil},
		{"public IPv6", "https://[2606:4700:4700::1111]/hook", false, nil},
		{"NAT64 of a public IPv4", "https://[64:ff9b::5db8:d822]/", false, nil},
		{"host name that resolves anywhere", "http://localhost:8080/", false, nil}, // refused when dialled
		{"loopback allowed", "http://127.0.0.1:8080/", true, nil},
		{"IPv6 loopback allowed", "http://[::1]:8080/", true, nil},

		{"loopback", "http://127.0.0.1/", false, forbidden},
		{"loopback 127/8", "http://127.1.2.3/", false, forbidden},
		{"private 10", "http://10.0.0.1/", false, forbidden},
		{"private 172.16", "http://172.16.5.4/", false, forbidden},
		{"private 192.168", "http://192.168.1.1/", false, forbidden},
		{"link-local metadata", "http://169.254.169.254/latest/meta-data/", false, forbidden},
		{"unspecified", "http://0.0.0.0/", false, forbidden},
		{"CGNAT", "http://100.64.0.1/", false, forbidden},
		{"multicast", "http://224.0.0.1/", false, forbidden},
		{"broadcast", "http://255.255.255.255/", false, forbidden},
		{"IPv6 loopback", "http://[::1]/", false, forbidden},
		{"IPv6 unspecified", "http://[::]/", false, forbidden},
		{"IPv6 ULA", "http://[fc00::1]/", false, forbidden},
		{"IPv6 ULA fd", "http://[fd12:3456::1]/", false, forbidden},
		{"IPv6 link-local", "http://[fe80::1]/", false, forbidden},
		{"IPv6 multicast", "http://[ff02::1]/", false, forbidden},
		{"IPv4-mapped loopback", "http://[::ffff:127.0.0.1]/", false, forbidden},
		{"NAT64 of private", "http://[64:ff9b::a00:1]/", false, forbidden},
		{"6to4 of private", "http://[2002:a00:1::1]/", false, forbidden},

		{"zone", "http://[fe80::1%25eth0]/", true, invalid},
		{"short IPv4 form", "http://127.1/", true, invalid},
		{"decimal IPv4 form", "http://2130706433/", true, invalid},
		{"hex IPv4 form", "http://0x7f.0.0.1/", true, invalid},
		{"ftp", "ftp://hooks.example.com/", true, invalid},
		{"no scheme", "hooks.example.com/x", true, invalid},
		{"relative", "/hook", true, invalid},
		{"empty", "", true, invalid},
		{"no host", "https:///hook", true, invalid},
		{"opaque", "http:hooks.example.com", true, invalid},
		{"userinfo", "https://user:pass@hooks.example.com/", true, invalid},
		{"user only", "https://user@hooks.example.com/", true, invalid},
		{"space in host", "http://hooks example.com/", true, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := webhooks.ValidateURL(tt.url, tt.allowPrivate)
			switch {
			case tt.want == nil && err != nil:
				t.Errorf("ValidateURL(%q, %v) err = %v, want nil", tt.url, tt.allowPrivate, err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("ValidateURL(%q, %v) err = %v, want %v", tt.url, tt.allowPrivate, err, tt.want)
			case err != nil && !errors.Is(err, invalid):
				t.Errorf("ValidateURL(%q, %v) err = %v, want it to wrap %v too", tt.url, tt.allowPrivate, err, invalid)
			}
		})
	}
}
