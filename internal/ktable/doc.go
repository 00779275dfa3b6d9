// Package ktable materialises a compacted Kafka topic into an in-memory
// table: it reads the topic from the beginning to its end offsets (Ready),
// then keeps tailing it. Tombstones delete keys. It owns no business logic:
// callers decode values and react to changes.
package ktable
