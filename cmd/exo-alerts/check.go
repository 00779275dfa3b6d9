package main

import (
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The checks of command-line values, made before a command reads its
// environment or connects to anything, each a usage error (exit status 2)
// that names the command, the flag or argument and what it wants.

// tenantIDRE is a tenant id as the API, the event schema (tenantId) and
// the store accept it; TestTenantCheckAgreesWithTheProcessor holds it to
// the processor's decoder.
var tenantIDRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$`)

// apiKeyIDRE is the id of an API key (controlplane's newID("key")).
var apiKeyIDRE = regexp.MustCompile(`^key_[a-z2-7]{20}$`)

// checkTenant checks a tenant id given as what (e.g. "--tenant").
func checkTenant(command, what, tenant string) error {
	if !tenantIDRE.MatchString(tenant) {
		return usageErr("%s: %s %q: a tenant id is 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit", command, what, tenant)
	}
	return nil
}

// checkAddr checks a listen address given as flag; empty may mean off.
func checkAddr(command, flag, addr string, emptyOK bool) error {
	if addr == "" && emptyOK {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var n uint64
		if n, err = strconv.ParseUint(port, 10, 16); err == nil && n == 0 && port != "0" {
			err = strconv.ErrSyntax
		}
	}
	if err != nil {
		off := ""
		if emptyOK {
			off = ", or empty for none"
		}
		return usageErr("%s: --%s %q: want host:port (e.g. 127.0.0.1:8080; port 0–65535)%s", command, flag, addr, off)
	}
	return nil
}

// checkRange checks an integer flag.
func checkRange(command, flag string, n, lo, hi int) error {
	if n < lo || n > hi {
		return usageErr("%s: --%s %d: want %d–%d", command, flag, n, lo, hi)
	}
	return nil
}

// checkDuration checks a duration flag.
func checkDuration(command, flag string, d, lo, hi time.Duration) error {
	if d < lo || d > hi {
		return usageErr("%s: --%s %s: want %s–%s", command, flag, d, lo, hi)
	}
	return nil
}

// checkName checks a free-text name (an API key's): not blank, at most
// 200 characters, no control characters, so that lists print it on one
// line.
func checkName(command, flag, name string) error {
	if strings.TrimSpace(name) == "" || len([]rune(name)) > 200 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return usageErr("%s: --%s %q: want 1–200 characters, not blank, without control characters", command, flag, name)
	}
	return nil
}
