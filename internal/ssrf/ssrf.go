package ssrf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"
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
		"192.0.2.0/24",      // TEST-NET-1 (documentation)
		"192.168.0.0/16",    // RFC 1918
		"198.51.100.0/24",   // TEST-NET-2 (documentation)
		"203.0.113.0/24",    // TEST-NET-3 (documentation)
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
		"2001:db8::/32",     // documentation
		"100::/64",          // discard-only (RFC 6666)
		"fec0::/10",         // site-local (deprecated, still routed inside some networks)
		"::ffff:0:0:0/96",   // IPv4-translated (RFC 2765): embeds an IPv4 address
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// localTTL is how long the machine's own addresses are cached: an address
// added to an interface is refused at the latest this long after.
const localTTL = 5 * time.Second

// Guard refuses denied addresses, and the machine's own addresses, unless
// allowlisted.
type Guard struct {
	allow []netip.Prefix

	// interfaceAddrs lists the machine's addresses (net.InterfaceAddrs;
	// replaced in tests).
	interfaceAddrs func() ([]net.Addr, error)
	now            func() time.Time
	mu             sync.Mutex
	local          map[netip.Addr]bool
	localAt        time.Time // when local was read; zero: never
}

// New returns a guard with an allowlist of IPs or CIDRs ("127.0.0.1",
// "10.1.0.0/16"). An allowlist entry "*" disables the guard (dev mode only).
func New(allowlist []string) (*Guard, error) {
	g := &Guard{interfaceAddrs: net.InterfaceAddrs, now: time.Now}
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
	local := g.localAddrs()
	for _, c := range candidates {
		if local[c] {
			return fmt.Errorf("%w: %s is an address of this machine", ErrRefused, c)
		}
	}
	return nil
}

// localAddrs returns the machine's own interface addresses (a public
// address of the host reaches its own services as loopback would), read at
// most every localTTL. If they cannot be read, the last set read is kept.
func (g *Guard) localAddrs() map[netip.Addr]bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if !g.localAt.IsZero() && now.Sub(g.localAt) < localTTL {
		return g.local
	}
	g.localAt = now
	addrs, err := g.interfaceAddrs()
	if err != nil {
		return g.local
	}
	local := make(map[netip.Addr]bool, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			local[addr.Unmap()] = true
		}
	}
	g.local = local // replaced, never changed: callers may keep reading the old one
	return local
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
