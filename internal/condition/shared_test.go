package condition

import (
	"errors"
	"sync"
	"testing"
)

// Holders of one source get one program, which decides as a program
// compiled on its own; it lives while a holder is left; a source that does
// not compile is refused with Compile's error and not kept.
func TestProgramsShareBySource(t *testing.T) {
	t.Parallel()
	var ps Programs
	srcs := []string{``, `labels.env == "prod"`, `int(labels.n) > 1`}
	held := map[string]*Program{}
	for range 3 {
		for _, src := range srcs {
			p, err := ps.Compile(src)
			if err != nil {
				t.Fatalf("%q: %v", src, err)
			}
			if q := held[src]; q != nil && q != p {
				t.Fatalf("%q: a second holder got another program", src)
			}
			held[src] = p
		}
	}
	if ps.Len() != len(srcs) {
		t.Fatalf("%d programs for %d sources", ps.Len(), len(srcs))
	}
	ev := event()
	env := NewEnv(ev)
	env.Labels["n"] = "x" // int("x") fails at run time
	for _, src := range srcs {
		own, err := Compile(src)
		if err != nil {
			t.Fatal(err)
		}
		ok1, err1 := held[src].Match(env)
		ok2, err2 := own.Match(env)
		if ok1 != ok2 || (err1 == nil) != (err2 == nil) {
			t.Fatalf("%q: shared program decides %v %v, own program %v %v", src, ok1, err1, ok2, err2)
		}
	}

	_, err := ps.Compile(`labels.env ==`)
	var ce *Error
	if !errors.As(err, &ce) || ce.Column == 0 {
		t.Fatalf("a source that does not compile: %v, want a *Error with its position", err)
	}
	if ps.Len() != len(srcs) {
		t.Fatalf("a source that does not compile was kept: %d programs", ps.Len())
	}

	src := srcs[1]
	ps.Release(src)
	ps.Release(src)
	if p, _ := ps.Compile(src); p != held[src] {
		t.Fatal("a program was dropped while a holder was left")
	}
	for range 2 {
		ps.Release(src)
	}
	if ps.Len() != len(srcs)-1 {
		t.Fatalf("the last holder of %q gone: %d programs, want %d", src, ps.Len(), len(srcs)-1)
	}
	ps.Release(src) // one too many: nothing to do
	ps.Release(`never compiled`)
	if p, _ := ps.Compile(src); p == held[src] {
		t.Fatal("a dropped program came back")
	}
}

// Holders on many goroutines at once share one program and drop it when
// the last gives it back (run with -race).
func TestProgramsConcurrent(t *testing.T) {
	t.Parallel()
	var ps Programs
	const n = 8
	got := make([]*Program, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			p, err := ps.Compile(`labels.env == "prod"`)
			if err != nil {
				t.Error(err)
			}
			got[i] = p
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("goroutine %d got another program", i)
		}
	}
	for range n {
		wg.Go(func() { ps.Release(`labels.env == "prod"`) })
	}
	wg.Wait()
	if ps.Len() != 0 {
		t.Fatalf("%d programs left after every holder gave its back", ps.Len())
	}
}
