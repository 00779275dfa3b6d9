// Output record memory: the records of a batch, their header lists and
// the bytes of their keys, values and header values are carved out of a
// few large allocations instead of five or six small ones per record.

package processor

import "github.com/twmb/franz-go/pkg/kgo"

// recordArena hands out memory for output records. A profile of
// BenchmarkProcessorThroughput (-tagfocus side=processor) showed the
// processor's own code outside the engine and the decoder spending most
// of its time allocating: a kgo.Record, a key, a value, a header list
// and two header values per delivery, a record, a key and a value per
// run state, a slice per event. Each of those was a call into the
// allocator and an object for the collector to track.
//
// Memory handed out is never handed out again: a chunk is used from its
// start to its end and then dropped (the collector frees it once no record
// in it is referenced), so a record still held by the Kafka client (a
// transaction that failed mid-flush, say) is never overwritten. What is
// carved out is capped (full slice expressions), so that appending to one
// record's bytes cannot spill into the next record's.
type recordArena struct {
	recs []kgo.Record
	hdrs []kgo.RecordHeader
	buf  []byte
}

// Chunk sizes: a batch of 2,000 events writes about 5,000 records, 3,400
// headers and 2.2 MB, so a batch takes a handful of chunks of each.
const (
	arenaRecords = 512
	arenaHeaders = 1024
	arenaBytes   = 256 << 10
)

// record returns a zeroed record.
func (a *recordArena) record() *kgo.Record {
	if len(a.recs) == cap(a.recs) {
		a.recs = make([]kgo.Record, 0, arenaRecords)
	}
	a.recs = a.recs[:len(a.recs)+1]
	return &a.recs[len(a.recs)-1]
}

// headers returns a list of n zeroed headers.
func (a *recordArena) headers(n int) []kgo.RecordHeader {
	if cap(a.hdrs)-len(a.hdrs) < n {
		a.hdrs = make([]kgo.RecordHeader, 0, max(arenaHeaders, n))
	}
	l := len(a.hdrs)
	a.hdrs = a.hdrs[:l+n]
	return a.hdrs[l : l+n : l+n]
}

// room returns an empty slice with room for at least n bytes, to append
// a record's bytes to and pass to take.
func (a *recordArena) room(n int) []byte {
	if cap(a.buf)-len(a.buf) < n {
		a.buf = make([]byte, 0, max(arenaBytes, n))
	}
	return a.buf[len(a.buf):len(a.buf)]
}

// take keeps b, appended to the slice room returned last: the arena moves
// past it. When appending outgrew the room, b is memory of its own and the
// arena does not move.
func (a *recordArena) take(b []byte) []byte {
	rest := a.buf[len(a.buf):cap(a.buf)]
	if len(b) > 0 && len(b) <= len(rest) && &b[0] == &rest[0] {
		a.buf = a.buf[:len(a.buf)+len(b)]
	}
	return b[:len(b):len(b)]
}

// bytes copies s into the arena.
func (a *recordArena) bytes(s string) []byte {
	return a.take(append(a.room(len(s)), s...))
}

// key is schemas.RecordKey(tenant, id) in the arena: tenant/id.
func (a *recordArena) key(tenant, id string) []byte {
	b := append(a.room(len(tenant)+1+len(id)), tenant...)
	b = append(b, '/')
	return a.take(append(b, id...))
}
