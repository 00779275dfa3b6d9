// Package rollout owns the meaning of the live rollout flag ("feature off →
// beta tenants → GA"): the states, who they serve, what EXO_TENANTS seeds,
// and Table, the live view the processor and the dispatcher read from the
// compacted tenants topic. It holds no SQL (internal/store/rollout.go) and
// serves no API (controlplane/rollout.go).
//
// Every tenant may have an explicit state (off, beta or ga) or none, and
// there is one global default (the stage of the rollout):
//
//	global off:  nobody is served (the kill switch)
//	global beta: only the tenants in state beta or ga
//	global ga:   every tenant but those in state off
//
// A tenant in state ga is served exactly as one in beta is today; ga records
// that it has graduated. A served tenant's events are matched and its alerts
// delivered; one not served gets no alert and a 403 from the API.
package rollout
