// Package openapi checks docs/openapi.json with tools nobody here wrote.
// Its tests lint the document with Redocly's recommended ruleset and
// Spectral's spectral:oas (.redocly.yaml, .spectral.yaml: no error and no
// warning allowed), and run two generated clients against a real control
// plane (real PostgreSQL and Kafka): the Go client oapi-codegen makes
// (../openapi-go, its own module) and a TypeScript one typed by
// openapi-typescript (client.ts, compiled by tsc --strict and run with
// openapi-fetch). The npm tools are pinned by package-lock.json and
// installed with `npm ci` into the user's cache directory, keyed by the
// lock file's hash, so a fresh machine needs no manual step. It has no
// non-test code.
package openapi
