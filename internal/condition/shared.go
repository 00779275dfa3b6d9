package condition

import "sync"

// Programs shares one compiled program between the conditions with the
// same source: compile options are the same for every rule, so a program
// depends on its source only, and 10,000 rules of a handful of sources
// hold a handful of programs (less memory, and the engine reads a few hot
// programs instead of one cold one per rule). A Program is immutable once
// compiled, so sharing it is safe. The processor's rule index keeps one;
// the engine's tests obtain their rules' programs from one too, so the
// engine benchmark evaluates what production does. The zero value is
// ready to use; Programs is safe for concurrent use.
type Programs struct {
	mu sync.Mutex
	m  map[string]*sharedProgram
}

// sharedProgram is a compiled condition and how many references to it
// Compile handed out and Release did not give back.
type sharedProgram struct {
	prog *Program
	refs int
}

// Compile returns the program of src, compiled once for every holder of
// that source; each successful call takes a reference that Release gives
// back. A source that does not compile is not kept (its error comes from
// Compile, the package function, every time).
func (ps *Programs) Compile(src string) (*Program, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if sp := ps.m[src]; sp != nil {
		sp.refs++
		return sp.prog, nil
	}
	p, err := Compile(src)
	if err != nil {
		return nil, err
	}
	if ps.m == nil {
		ps.m = map[string]*sharedProgram{}
	}
	ps.m[src] = &sharedProgram{prog: p, refs: 1}
	return p, nil
}

// Release gives back a reference Compile took for src, dropping the
// program when no holder is left. Releasing a source with no reference
// does nothing.
func (ps *Programs) Release(src string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	sp := ps.m[src]
	if sp == nil {
		return
	}
	if sp.refs--; sp.refs <= 0 {
		delete(ps.m, src)
	}
}

// Len is the number of distinct programs held.
func (ps *Programs) Len() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return len(ps.m)
}
