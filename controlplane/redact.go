package controlplane

import (
	"errors"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
)

// Problem details name the offending value by default (Huma puts it in
// errors[].value). For the members that hold credentials — the secret, the
// header values, a target URL (its path or query may carry a token) — and
// for a whole body (an unknown member's report holds the object) the value
// is left out: a problem must never echo a secret back, to logs or proxies.
//
// huma.NewError is a package variable shared by every Huma API in the
// process, so the redacting constructor is installed once, by newAPI, before
// the first API is built; building more servers (tests build many) does not
// wrap it again.
var redactOnce sync.Once

func redactProblemValues() {
	redactOnce.Do(func() {
		next := huma.NewError
		huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
			for _, err := range errs {
				var d *huma.ErrorDetail
				if errors.As(err, &d) && sensitiveLocation(d.Location) {
					d.Value = nil
				}
			}
			return next(status, msg, errs...)
		}
	})
}

func sensitiveLocation(loc string) bool {
	if loc == "body" {
		return true
	}
	for _, p := range []string{"body.secret", "body.headers", "body.target_url", "body.routing_key"} {
		if loc == p || strings.HasPrefix(loc, p+".") || strings.HasPrefix(loc, p+"[") {
			return true
		}
	}
	return false
}
