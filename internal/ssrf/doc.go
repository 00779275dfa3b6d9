// Package ssrf decides which network addresses webhook deliveries may reach.
// The dispatcher applies it at dial time, after DNS resolution, so a
// hostname that resolves to a private address is refused too; the control
// plane applies it when an endpoint is created. Loopback, private (RFC 1918,
// ULA, site-local), link-local, CGNAT, multicast, unspecified, documentation,
// discard, addresses embedding an IPv4 address (mapped, translated,
// compatible, NAT64, 6to4, Teredo), cloud metadata addresses and the
// machine's own interface addresses are refused unless the operator's
// allowlist names them. It lives under internal/ because two services use
// it; it imports nothing of this module.
package ssrf
