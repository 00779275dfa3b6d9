// Package ssrf decides which network addresses webhook deliveries may reach.
// The dispatcher applies it at dial time, after DNS resolution, so a
// hostname that resolves to a private address is refused too; the control
// plane applies it when an endpoint is created. Loopback, private (RFC 1918,
// ULA), link-local, CGNAT, multicast, unspecified, IPv4-mapped and cloud
// metadata addresses are refused unless the operator's allowlist names them.
package ssrf
