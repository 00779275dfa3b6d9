package ssrf

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	g, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	refused := []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
		"224.0.0.1", "0.0.0.0", "::1", "::", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "fd00:ec2::254",
		"::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a00:1", "2002:7f00:1::1", "2001:0:4136:e378::1", "168.63.129.16"}
	for _, s := range refused {
		if err := g.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err = %v, want refused", s, err)
		}
	}
	for _, s := range []string{"93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"} {
		if err := g.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("%s refused: %v", s, err)
		}
	}
	allow, _ := New([]string{"127.0.0.1", "10.0.0.0/8"})
	for _, s := range []string{"127.0.0.1", "10.9.9.9", "::ffff:127.0.0.1"} {
		if err := allow.Check(netip.MustParseAddr(s)); err != nil {
			t.Errorf("allowlisted %s refused: %v", s, err)
		}
	}
	if err := allow.Check(netip.MustParseAddr("127.0.0.2")); err == nil {
		t.Error("127.0.0.2 allowed by an allowlist naming only 127.0.0.1")
	}
	if _, err := New([]string{"not-an-ip", "10.0.0.0/99"}); err == nil {
		t.Error("bad allowlist accepted")
	}
}

// A hostname that resolves to loopback is refused at dial time.
func TestDialRefusesResolvedLoopback(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	g, _ := New(nil)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: (&net.Dialer{Control: g.Control}).DialContext,
	}}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://localhost:"+port+"/", nil)
	resp, err := client.Do(req)
	if err == nil {
		_ = resp.Body.Close()
		t.Fatal("request to localhost reached the server")
	}
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("err = %v, want ErrRefused", err)
	}
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		hostBits := max(0, min(8, (i+1)*8-p.Bits()))
		b[i] |= byte(1<<hostBits - 1)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Each range of issue #8 is refused from its first to its last address; the
// neighbours just outside it stay reachable where they are public.
func TestCheckRanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix  string
		inside  string
		outside []string // public neighbours, reachable
	}{
		{"192.0.2.0/24", "192.0.2.77", []string{"192.0.1.255", "192.0.3.0"}},
		{"198.51.100.0/24", "198.51.100.1", []string{"198.51.99.255", "198.51.101.0"}},
		{"203.0.113.0/24", "203.0.113.200", []string{"203.0.112.255", "203.0.114.0"}},
		{"2001:db8::/32", "2001:db8:85a3::8a2e:370:7334", []string{"2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db9::"}},
		{"100::/64", "100::dead:beef", []string{"ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "100:0:0:1::"}},
		// fec0::/10 lies between link-local fe80::/10 and multicast ff00::/8,
		// both refused: no public neighbour.
		{"fec0::/10", "fec0::1", nil},
		{"::ffff:0:0:0/96", "::ffff:0:7f00:1", []string{"::fffe:ffff:ffff:ffff", "::ffff:1:0:0"}},
	} {
		t.Run(tc.prefix, func(t *testing.T) {
			t.Parallel()
			g, err := New(nil)
			if err != nil {
				t.Fatal(err)
			}
			g.interfaceAddrs = func() ([]net.Addr, error) { return nil, nil }
			p := netip.MustParsePrefix(tc.prefix)
			for _, a := range []netip.Addr{p.Addr(), lastAddr(p), netip.MustParseAddr(tc.inside)} {
				if !p.Contains(a) {
					t.Fatalf("test case: %s is not in %s", a, p)
				}
				if err := g.Check(a); !errors.Is(err, ErrRefused) {
					t.Errorf("%s (in %s): err = %v, want refused", a, p, err)
				}
			}
			for _, s := range tc.outside {
				a := netip.MustParseAddr(s)
				if p.Contains(a) {
					t.Fatalf("test case: %s is in %s", a, p)
				}
				if err := g.Check(a); err != nil {
					t.Errorf("%s (just outside %s) refused: %v", a, p, err)
				}
			}
			// The operator's allowlist still wins.
			allow, err := New([]string{tc.inside})
			if err != nil {
				t.Fatal(err)
			}
			if err := allow.Check(netip.MustParseAddr(tc.inside)); err != nil {
				t.Errorf("allowlisted %s refused: %v", tc.inside, err)
			}
		})
	}
}

// The machine's own addresses are refused, even public ones (the host's
// public address reaches its own services as loopback would); the set is
// read again after localTTL, and the allowlist still wins.
func TestCheckOwnAddresses(t *testing.T) {
	t.Parallel()
	own := []net.Addr{
		&net.IPNet{IP: net.ParseIP("93.184.216.34"), Mask: net.CIDRMask(24, 32)},
		&net.IPAddr{IP: net.ParseIP("2606:4700::6810:84e5")},
	}
	now := time.Unix(1_700_000_000, 0)
	g, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return now }
	g.interfaceAddrs = func() ([]net.Addr, error) { return own, nil }
	for _, s := range []string{"93.184.216.34", "::ffff:93.184.216.34", "2606:4700::6810:84e5"} {
		if err := g.Check(netip.MustParseAddr(s)); !errors.Is(err, ErrRefused) {
			t.Errorf("own address %s: err = %v, want refused", s, err)
		}
	}
	// A neighbour in the same subnet is another machine.
	if err := g.Check(netip.MustParseAddr("93.184.216.35")); err != nil {
		t.Errorf("93.184.216.35 (not ours) refused: %v", err)
	}
	// The interface loses the address: allowed once the set is read again;
	// one that fails to be read keeps the last set.
	own = own[1:]
	if err := g.Check(netip.MustParseAddr("93.184.216.34")); err == nil {
		t.Error("the set was read again before localTTL")
	}
	now = now.Add(localTTL)
	if err := g.Check(netip.MustParseAddr("93.184.216.34")); err != nil {
		t.Errorf("93.184.216.34 refused after the interface lost it: %v", err)
	}
	g.interfaceAddrs = func() ([]net.Addr, error) { return nil, errors.New("netlink: no") }
	now = now.Add(localTTL)
	if err := g.Check(netip.MustParseAddr("2606:4700::6810:84e5")); !errors.Is(err, ErrRefused) {
		t.Errorf("own address allowed after a failed read: %v", err)
	}
	allow, _ := New([]string{"93.184.216.34"})
	allow.interfaceAddrs = func() ([]net.Addr, error) { return []net.Addr{&net.IPAddr{IP: net.ParseIP("93.184.216.34")}}, nil }
	if err := allow.Check(netip.MustParseAddr("93.184.216.34")); err != nil {
		t.Errorf("allowlisted own address refused: %v", err)
	}
	// And on this machine: every address of its interfaces is refused.
	real, _ := New(nil)
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			ip, _ := netip.AddrFromSlice(n.IP)
			if err := real.Check(ip); !errors.Is(err, ErrRefused) {
				t.Errorf("this machine's address %s: err = %v, want refused", ip, err)
			}
		}
	}
}
