// Assembling a call's Output. The engine builds it in scratch slices it
// keeps from call to call. Then:
//
//   - under Config.ReuseOutput (the processor's engine: it turns each
//     Output into records, copying every byte, before its next call), the
//     Output is those slices (lend), and the alert ids and payloads are in
//     one chunk the engine writes again at its next call: an event
//     allocates nothing but a new run. Copying every output into memory of
//     its own was a third of BenchmarkEngineEvent's time, most of it the
//     collector's;
//   - otherwise the caller owns each Output: it is copied into allocations
//     of the exact size, the state changes and the run states they write
//     in one (outBlock1, outBlock2, for the usual counts), the deliveries
//     in one; alert ids and payloads (bytes, no pointers) are encoded
//     straight into a chunk shared by the outputs of successive calls,
//     each call's bytes after the last one's: a call's Payloads are slices
//     of it, never written again, and a chunk is freed when no output
//     points into it any more.

package engine

import (
	"unsafe"

	"github.com/exospherehost/exo-alerts/schemas"
)

// scratch is the current call's output as it is built.
type scratch struct {
	states     []scratchState
	boxes      []stateBox // the run states of states, by index
	deliveries []scratchDelivery
}

// scratchState is a state change: box indexes scratch.boxes; -1 is a
// tombstone.
type scratchState struct {
	key string
	box int
}

// scratchDelivery is a delivery whose alert id and payload are
// e.arena[start:start+idLen] and e.arena[start+idLen:end] (start -1: it
// has its AlertID and no payload).
type scratchDelivery struct {
	d          schemas.DeliveryRecord
	start, end int
}

// maxScratch is the most state changes or deliveries whose scratch room
// is kept from one call to the next (a lagging partition's Tick can make
// many more).
const maxScratch = 1024

// begin starts a call's output (a panicking call may have left some).
func (e *Engine) begin() {
	e.scratch.reset()
	e.arena = nil
	e.durTenant, e.durRules, e.durKnown = "", nil, false
}

// reset empties s. What the last call left in the slices' room is kept
// until overwritten (clearing it costs write barriers while the GC runs):
// references to that call's strings, labels and rules, no more.
func (s *scratch) reset() {
	s.states, s.boxes, s.deliveries = s.states[:0], s.boxes[:0], s.deliveries[:0]
	if cap(s.states) > maxScratch || cap(s.boxes) > maxScratch || cap(s.deliveries) > maxScratch {
		*s = scratch{}
	}
}

// addState adds r's state record to the call's state changes and returns
// its scratch copy, valid until the next addState.
func (e *Engine) addState(r *run) *schemas.RunState {
	s := &e.scratch
	s.boxes = append(s.boxes, stateBox{})
	s.states = append(s.states, scratchState{key: r.key(), box: len(s.boxes) - 1})
	return r.stateIn(&s.boxes[len(s.boxes)-1])
}

// outBlock1 and outBlock2 hold the state changes and run states of a
// call with few, in one allocation: the usual event brings its own state
// and, now and then, a duration rule's or a tombstone.
type (
	outBlock1 struct {
		states [2]StateChange
		boxes  [1]stateBox
	}
	outBlock2 struct {
		states [4]StateChange
		boxes  [2]stateBox
	}
)

// finish copies the call's scratch output into out.
func (e *Engine) finish(out *Output) {
	if e.cfg.ReuseOutput {
		e.lend(out)
		return
	}
	s := &e.scratch
	if n, m := len(s.states), len(s.boxes); n > 0 {
		var states []StateChange
		var boxes []stateBox
		switch {
		case n <= len(outBlock1{}.states) && m <= len(outBlock1{}.boxes):
			b := &outBlock1{}
			states, boxes = b.states[:n:n], b.boxes[:m:m]
		case n <= len(outBlock2{}.states) && m <= len(outBlock2{}.boxes):
			b := &outBlock2{}
			states, boxes = b.states[:n:n], b.boxes[:m:m]
		default:
			states, boxes = make([]StateChange, n), make([]stateBox, m)
		}
		for i := range boxes {
			boxes[i].moveFrom(&s.boxes[i])
		}
		for i, st := range s.states {
			states[i].Key = st.key
			if st.box >= 0 {
				states[i].Value = &boxes[st.box].st
			}
		}
		out.States = states
	}
	if len(s.deliveries) > 0 {
		e.seal(out)
	}
	e.scratch.reset()
	e.durTenant, e.durRules, e.durKnown = "", nil, false
}

// lend sets out's states and deliveries to the call's scratch output
// itself, under Config.ReuseOutput: the run states stay in the scratch
// boxes, the alert ids and payloads in the chunk, all written over by the
// next call.
func (e *Engine) lend(out *Output) {
	s := &e.scratch
	if len(s.states) > 0 {
		states := e.reused.States[:0]
		for i := range s.boxes {
			s.boxes[i].moveFrom(&s.boxes[i]) // the slice may have grown since stateIn
		}
		for _, st := range s.states {
			c := StateChange{Key: st.key}
			if st.box >= 0 {
				c.Value = &s.boxes[st.box].st
			}
			states = append(states, c)
		}
		out.States, e.reused.States = states, states
	}
	if len(s.deliveries) > 0 {
		buf := e.arena
		if cap(buf) <= maxArena {
			e.chunk = buf[:0]
		}
		e.arena = nil
		ds := e.reused.Deliveries[:0]
		for i := range s.deliveries {
			sd := &s.deliveries[i]
			d := sd.d
			if sd.start >= 0 {
				d.AlertID = unsafe.String(&buf[sd.start], idLen) //nolint:gosec // G103: buf is not written before the next call
				d.Payload = buf[sd.start+idLen : sd.end : sd.end]
			}
			ds = append(ds, d)
		}
		out.Deliveries, e.reused.Deliveries = ds, ds
	}
	if cap(e.reused.States) > maxScratch || cap(e.reused.Deliveries) > maxScratch {
		e.reused = Output{}
	}
	e.scratch.reset()
	e.durTenant, e.durRules, e.durKnown = "", nil, false
}

// moveFrom sets b to from, pointing b's state at b's own times: stateIn
// points a box's state at the box's (when it has them), and a copy of a
// box — from, or the box from was copied from when the scratch slice
// grew — holds the same values.
func (b *stateBox) moveFrom(from *stateBox) {
	*b = *from
	st := &b.st
	if st.StartedAt != nil {
		st.StartedAt = &b.started
	}
	if st.FinishedAt != nil {
		st.FinishedAt = &b.finished
	}
}

// Chunks of alert ids and payloads.
const (
	// chunkSize is the capacity of a new chunk: about twenty events'
	// payloads.
	chunkSize = 32 << 10
	// minChunkFree is the free room a call's payloads start in: with
	// less, a new chunk is taken.
	minChunkFree = 4 << 10
	// maxArena is the largest arena kept as the chunk when a call's
	// payloads outgrew theirs (a lagging partition's Tick).
	maxArena = 256 << 10
)

// takeArena starts the call's arena in the free part of the chunk.
func (e *Engine) takeArena() {
	if e.cfg.ReuseOutput {
		e.chunk = e.chunk[:0] // the last call's output is dead
	}
	if cap(e.chunk)-len(e.chunk) < minChunkFree {
		e.chunk = make([]byte, 0, chunkSize)
	}
	e.arena = e.chunk[len(e.chunk):len(e.chunk)]
	e.arenaCap = cap(e.arena)
}

// seal copies the call's deliveries into out.Deliveries, giving them their
// alert ids and payloads in the arena: AlertID is a string of its bytes,
// Payload a slice of them with its capacity clipped (an append to a payload
// copies it). The chunk's free part starts after them: nothing writes to
// those bytes after this.
func (e *Engine) seal(out *Output) {
	ds := make([]schemas.DeliveryRecord, len(e.scratch.deliveries))
	buf := e.arena
	switch {
	case buf == nil: // no payload (not reached: see delivery)
	case cap(buf) == e.arenaCap: // still in the chunk
		e.chunk = e.chunk[:len(e.chunk)+len(buf)]
	case cap(buf) <= maxArena: // outgrew it: the new array is the chunk
		e.chunk = buf
	default:
		e.chunk = nil
	}
	e.arena = nil
	for i := range e.scratch.deliveries {
		sd := &e.scratch.deliveries[i]
		ds[i] = sd.d
		if sd.start >= 0 {
			ds[i].AlertID = unsafe.String(&buf[sd.start], idLen) //nolint:gosec // G103: buf is never written after this
			ds[i].Payload = buf[sd.start+idLen : sd.end : sd.end]
		}
	}
	out.Deliveries = ds
}
