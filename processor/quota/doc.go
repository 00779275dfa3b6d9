// Package quota is the delivery quota of the processor
// (docs/design/aggregate-alerts.md §5): per partition of the topic consumed
// and per minute of event time, each tenant may have ceil(C_t/P) alerts
// delivered and all tenants together ceil(G/P), where C_t is the tenant's
// cap (the operator's override, else the default) and G the global cap; 0
// is no cap. The tenant's share is checked first: a tenant at its cap never
// consumes global budget.
//
// It is pure: no Kafka, no clock (time comes from the alerts' event times),
// no goroutine. The engines call Admit; the processor loop drives
// Begin/Commit/Abort next to the engines' (an aborted batch is processed
// again and must find the counters as they were), and drains Usage into the
// batch's transaction as quota-usage records. Counters live in memory: after
// a restart or a rebalance the current minute starts afresh.
package quota
