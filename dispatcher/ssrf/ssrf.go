package ssrf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// ErrRefused is wrapped by every refusal.
var ErrRefused = errors.New("ssrf: destination address refused")

var denied = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",         // "this" network, unspecified
		"10.0.0.0/8",        // RFC 1918
		"100.64.0.0/10",     // CGNAT
		"127.0.0.0/8",       // loopback
		"169.254.0.0/16",    // link-local, cloud metadata 169.254.169.254
		"172.16.0.0/12",     // RFC 1918
		"192.0.0.0/24",      // IETF protocol assignments
		"192.168.0.0/16",    // RFC 1918
		"198.18.0.0/15",     // benchmarking
		"224.0.0.0/4",       // multicast
		"240.0.0.0/4",       // reserved, broadcast
		"::/128",            // unspecified
		"::1/128",           // loopback
		"::ffff:0:0/96",     // IPv4-mapped (checked again unmapped)
		"64:ff9b::/96",      // NAT64
		"fc00::/7",          // unique local
		"fe80::/10",         // link-local
		"ff00::/8",          // multicast
		"fd00:ec2::254/128", // AWS metadata over IPv6
		"::/96",             // IPv4-compatible (deprecated; may reach IPv4 hosts)
		"64:ff9b:1::/48",    // local-use NAT64 (RFC 8215)
		"2002::/16",         // 6to4: embeds an IPv4 address
		"2001::/32",         // Teredo: embeds an IPv4 address
		"168.63.129.16/32",  // Azure WireServer (platform metadata)
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Guard refuses denied addresses unless allowlisted.
type Guard struct {
	allow []netip.Prefix
}

// New returns a guard with an allowlist of IPs or CIDRs ("127.0.0.1",
// "10.1.0.0/16"). An allowlist entry "*" disables the guard (dev mode only).
func New(allowlist []string) (*Guard, error) {
	g := &Guard{}
	var problems []string
	for _, a := range allowlist {
		a = strings.TrimSpace(a)
		switch {
		case a == "":
		case a == "*":
			g.allow = append(g.allow, netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0"))
		case strings.Contains(a, "/"):
			p, err := netip.ParsePrefix(a)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%q is not a CIDR", a))
				continue
			}
			g.allow = append(g.allow, p.Masked())
		default:
			ip, err := netip.ParseAddr(a)
			if err != nil {
				problems = append(problems, fmt.Sprintf("%q is not an IP address", a))
				continue
			}
			g.allow = append(g.allow, netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("ssrf: bad allowlist: %s", strings.Join(problems, "; "))
	}
	return g, nil
}

// Check returns an error wrapping ErrRefused if ip may not be reached.
func (g *Guard) Check(ip netip.Addr) error {
	ip = ip.WithZone("")
	candidates := []netip.Addr{ip}
	if ip.Is4In6() {
		candidates = append(candidates, ip.Unmap())
	}
	for _, a := range g.allow {
		for _, c := range candidates {
			if a.Contains(c) {
				return nil
			}
		}
	}
	for _, d := range denied {
		for _, c := range candidates {
			if d.Contains(c) {
				return fmt.Errorf("%w: %s is in %s", ErrRefused, c, d)
			}
		}
	}
	return nil
}

// Control is a net.Dialer Control function that refuses denied addresses at
// dial time, after DNS resolution.
func (g *Guard) Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrRefused, host)
	}
	return g.Check(ip)
}
