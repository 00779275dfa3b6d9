package config_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/exospherehost/exo-alerts/internal/config"
)

// The code this file reads: the commands (cmd/exo-alerts) and this
// package, the only two that read the environment.
const (
	module  = "github.com/exospherehost/exo-alerts"
	root    = "../.."
	cmdDir  = "cmd/exo-alerts"
	confDir = "internal/config"
)

// source is what the Go files (not the tests) of cmd/exo-alerts and
// internal/config say about the environment: which variables each
// function reads, directly or through the functions it calls, and which
// command each function is.
type source struct {
	funcs map[string]*fn // by key: "main.cmdDev", "config.Load", "config.Env.KafkaOpts"
	// top are the commands of run()'s table: name => function key.
	top map[string]string
	// problems are reads the analysis cannot follow (a name that is not a
	// constant) and reads of the environment outside Env.
	problems []string
}

type fn struct {
	key, pkg string
	decl     *ast.FuncDecl
	file     string
	// command is the name of the FlagSet the function makes: the command
	// whose -h it answers ("apikey create"; "rollout" for "rollout "+verb).
	command string
	reads   []read
	calls   []edge // the functions it calls or refers to
	// names are the parameters whose values are variable names the
	// function reads (Env.String's key, setOf's keys): calls to it read
	// the names given there.
	names map[int]bool
}

// read is one variable a function reads, with the default it gives when
// that is a literal.
type read struct {
	name string
	def  string // "" unless a literal default (string, int, N*time.Unit) was given
	pos  string
	gate *gate
}

// edge is a function called (call set) or referred to.
type edge struct {
	key  string
	call *ast.CallExpr
	gate *gate
}

// gate is the condition a read or call sits under when it is a field of a
// parameter: Load's "if needs.Kafka { … }". A call of the function with a
// composite literal for that parameter that leaves the field out, or sets
// it to false (config.Needs{Database: true}), does not reach it.
type gate struct {
	param int
	field string
}

// open reports whether call (nil: any) reaches what g guards.
func (g *gate) open(call *ast.CallExpr) bool {
	if g == nil || call == nil || g.param >= len(call.Args) {
		return true
	}
	arg := call.Args[g.param]
	if u, ok := arg.(*ast.UnaryExpr); ok && u.Op == token.AND {
		arg = u.X
	}
	cl, ok := arg.(*ast.CompositeLit)
	if !ok {
		return true
	}
	for _, e := range cl.Elts {
		kv, ok := e.(*ast.KeyValueExpr)
		if !ok {
			return true // positional fields: assume set
		}
		if k, ok := kv.Key.(*ast.Ident); ok && k.Name == g.field {
			v, ok := kv.Value.(*ast.Ident)
			return !ok || v.Name != "false"
		}
	}
	return false
}

// gateOf is the gate of the innermost if statement whose body holds the
// node at the top of stack.
func gateOf(f *fn, stack []ast.Node) *gate {
	for i := len(stack) - 2; i >= 0; i-- {
		ifs, ok := stack[i].(*ast.IfStmt)
		if !ok || stack[i+1] != ifs.Body {
			continue
		}
		conds := []ast.Expr{ifs.Cond}
		for len(conds) > 0 {
			c := conds[0]
			conds = conds[1:]
			if b, ok := c.(*ast.BinaryExpr); ok && b.Op == token.LAND {
				conds = append(conds, b.X, b.Y)
				continue
			}
			sel, ok := c.(*ast.SelectorExpr)
			if !ok {
				continue
			}
			if x, ok := sel.X.(*ast.Ident); ok {
				if p := slices.Index(params(f.decl), x.Name); p >= 0 {
					return &gate{param: p, field: sel.Sel.Name}
				}
			}
		}
	}
	return nil
}

// readers are the calls whose first argument is the name of a variable
// read as it is: os.Getenv, os.LookupEnv and Env's Lookup field.
func baseRead(pkg string, call *ast.CallExpr, envs map[string]bool) bool {
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	x, ok := sel.X.(*ast.Ident)
	if !ok {
		return false
	}
	return x.Name == "os" && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") ||
		envs[x.Name] && sel.Sel.Name == "Lookup"
}

func loadSource(t *testing.T) *source {
	t.Helper()
	s := &source{funcs: map[string]*fn{}, top: map[string]string{}}
	consts := map[string]map[string]string{"main": {}, "config": {}}
	fset := token.NewFileSet()
	files := map[string][]*ast.File{}
	for pkg, dir := range map[string]string{"main": cmdDir, "config": confDir} {
		paths, err := filepath.Glob(filepath.Join(root, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			files[pkg] = append(files[pkg], f)
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.GenDecl:
					if d.Tok != token.CONST {
						continue
					}
					for _, spec := range d.Specs {
						vs := spec.(*ast.ValueSpec)
						for i, n := range vs.Names {
							if i < len(vs.Values) {
								if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
									consts[pkg][n.Name], _ = strconv.Unquote(lit.Value)
								}
							}
						}
					}
				case *ast.FuncDecl:
					key := pkg + "." + d.Name.Name
					if d.Recv != nil {
						key = pkg + "." + typeName(d.Recv.List[0].Type) + "." + d.Name.Name
					}
					s.funcs[key] = &fn{key: key, pkg: pkg, decl: d, file: p, names: map[int]bool{}}
				}
			}
		}
	}
	// The name a read gives: a literal or a constant.
	constant := func(pkg string, e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			v, err := strconv.Unquote(e.Value)
			return v, err == nil
		case *ast.Ident:
			v, ok := consts[pkg][e.Name]
			return v, ok
		case *ast.SelectorExpr:
			if x, ok := e.X.(*ast.Ident); ok && x.Name == "config" {
				v, ok := consts["config"][e.Sel.Name]
				return v, ok
			}
		}
		return "", false
	}
	type callSite struct {
		f    *fn
		call *ast.CallExpr
		// callee's key, or "" for a base read
		callee string
		gate   *gate
	}
	var sites []callSite
	for _, f := range s.funcs {
		envs, locals, _ := scope(f)
		var stack []ast.Node
		ast.Inspect(f.decl.Body, func(n ast.Node) bool {
			if n == nil {
				stack = stack[:len(stack)-1]
				return true
			}
			stack = append(stack, n)
			g := gateOf(f, stack)
			switch n := n.(type) {
			case *ast.CallExpr:
				if baseRead(f.pkg, n, envs) {
					sites = append(sites, callSite{f: f, call: n, gate: g})
					if f.pkg != "config" {
						s.problems = append(s.problems, fmt.Sprintf("%s: %s reads the environment itself: read it through config.Env", fset.Position(n.Pos()), f.key))
					}
				}
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok {
						if x.Name == "flag" && sel.Sel.Name == "NewFlagSet" && len(n.Args) > 0 {
							f.command = flagSetName(n.Args[0])
						}
						if envs[x.Name] {
							key := "config.Env." + sel.Sel.Name
							if _, ok := s.funcs[key]; ok {
								f.calls = append(f.calls, edge{key: key, call: n, gate: g})
								sites = append(sites, callSite{f: f, call: n, callee: key, gate: g})
							}
						}
					}
				}
				if id, ok := n.Fun.(*ast.Ident); ok && !locals[id.Name] {
					if key := f.pkg + "." + id.Name; s.funcs[key] != nil {
						sites = append(sites, callSite{f: f, call: n, callee: key, gate: g})
					}
				}
			case *ast.Ident:
				// A function named (called, or handed over as a value).
				if key := f.pkg + "." + n.Name; s.funcs[key] != nil && !locals[n.Name] {
					f.calls = append(f.calls, edge{key: key, call: callOf(stack), gate: g})
				}
			case *ast.SelectorExpr:
				if x, ok := n.X.(*ast.Ident); ok && x.Name == "config" && f.pkg == "main" {
					if key := "config." + n.Sel.Name; s.funcs[key] != nil {
						f.calls = append(f.calls, edge{key: key, call: callOf(stack), gate: g})
					}
				}
			}
			return true
		})
	}
	// Which parameters carry names: until nothing changes, a function
	// whose parameter reaches the name of a read carries it.
	for changed := true; changed; {
		changed = false
		for _, site := range sites {
			idx := []int{0}
			if site.callee != "" {
				idx = keys(s.funcs[site.callee].names)
			}
			for _, i := range idx {
				if i >= len(site.call.Args) {
					continue
				}
				if p, ok := paramOf(site.f, site.call.Args[i]); ok && !site.f.names[p] {
					site.f.names[p] = true
					changed = true
				}
			}
		}
	}
	// The reads: each name a read gets, with its literal default.
	for _, site := range sites {
		idx := []int{0}
		if site.callee != "" {
			idx = keys(s.funcs[site.callee].names)
		}
		variadic := site.callee != "" && isVariadic(s.funcs[site.callee].decl)
		for _, i := range idx {
			args := site.call.Args[min(i, len(site.call.Args)):]
			if !variadic || i < len(params(s.funcs[site.callee].decl))-1 {
				args = args[:min(1, len(args))]
			}
			for j, a := range args {
				if _, ok := paramOf(site.f, a); ok {
					continue // the caller's caller names it
				}
				name, ok := constant(site.f.pkg, a)
				if !ok {
					s.problems = append(s.problems, fmt.Sprintf("%s: %s reads a variable whose name is not a constant", fset.Position(a.Pos()), site.f.key))
					continue
				}
				r := read{name: name, pos: fset.Position(a.Pos()).String(), gate: site.gate}
				if j == 0 && i+1 < len(site.call.Args) && slices.Contains([]string{"String", "Int", "Duration"}, lastPart(site.callee)) {
					r.def = literal(site.call.Args[i+1])
				}
				site.f.reads = append(site.f.reads, r)
			}
		}
	}
	// run()'s table of commands.
	if f := s.funcs["main.run"]; f != nil {
		ast.Inspect(f.decl.Body, func(n ast.Node) bool {
			if kv, ok := n.(*ast.KeyValueExpr); ok {
				k, ok1 := kv.Key.(*ast.BasicLit)
				v, ok2 := kv.Value.(*ast.Ident)
				if ok1 && ok2 && k.Kind == token.STRING {
					name, _ := strconv.Unquote(k.Value)
					if !strings.HasPrefix(name, "-") {
						s.top[name] = "main." + v.Name
					}
				}
			}
			return true
		})
	}
	if len(s.top) < 10 {
		t.Fatalf("found %d commands in run()'s table (%v): the analysis no longer reads cmd/exo-alerts", len(s.top), s.top)
	}
	return s
}

// scope returns a function's identifiers of type *config.Env, every name
// it declares (parameters, variables: a call through one is not a call of
// a package function), and its range variables (name => ranged expr).
func scope(f *fn) (envs, locals map[string]bool, ranges map[string]ast.Expr) {
	envs, locals, ranges = map[string]bool{}, map[string]bool{}, map[string]ast.Expr{}
	isEnv := func(e ast.Expr) bool {
		if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
			if cl, ok := u.X.(*ast.CompositeLit); ok {
				e = cl.Type
			}
		}
		if st, ok := e.(*ast.StarExpr); ok {
			e = st.X
		}
		return typeName(e) == "Env"
	}
	fields := func(fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, fd := range fl.List {
			for _, n := range fd.Names {
				locals[n.Name] = true
				if isEnv(fd.Type) {
					envs[n.Name] = true
				}
			}
		}
	}
	fields(f.decl.Recv)
	fields(f.decl.Type.Params)
	fields(f.decl.Type.Results)
	ast.Inspect(f.decl.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			if n.Tok != token.DEFINE {
				return true
			}
			for i, l := range n.Lhs {
				if id, ok := l.(*ast.Ident); ok {
					locals[id.Name] = true
					if len(n.Rhs) == len(n.Lhs) && isEnv(n.Rhs[i]) {
						envs[id.Name] = true
					}
				}
			}
		case *ast.RangeStmt:
			for _, e := range []ast.Expr{n.Key, n.Value} {
				if id, ok := e.(*ast.Ident); ok {
					locals[id.Name] = true
				}
			}
			if id, ok := n.Value.(*ast.Ident); ok {
				ranges[id.Name] = n.X
			}
		case *ast.ValueSpec:
			for _, id := range n.Names {
				locals[id.Name] = true
				if n.Type != nil && isEnv(n.Type) {
					envs[id.Name] = true
				}
			}
		case *ast.FuncLit:
			fields(n.Type.Params)
		}
		return true
	})
	return envs, locals, ranges
}

// paramOf reports which parameter of f the expression e is (or ranges
// over: setOf's "for _, k := range keys").
func paramOf(f *fn, e ast.Expr) (int, bool) {
	id, ok := e.(*ast.Ident)
	if !ok {
		return 0, false
	}
	_, _, ranges := scope(f)
	if x, ok := ranges[id.Name]; ok {
		if rid, ok := x.(*ast.Ident); ok {
			id = rid
		}
	}
	for i, p := range params(f.decl) {
		if p == id.Name {
			return i, true
		}
	}
	return 0, false
}

func params(d *ast.FuncDecl) []string {
	var out []string
	for _, fd := range d.Type.Params.List {
		for _, n := range fd.Names {
			out = append(out, n.Name)
		}
	}
	return out
}

func isVariadic(d *ast.FuncDecl) bool {
	l := d.Type.Params.List
	if len(l) == 0 {
		return false
	}
	_, ok := l[len(l)-1].Type.(*ast.Ellipsis)
	return ok
}

func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.StarExpr:
		return typeName(e.X)
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}

func lastPart(key string) string { return key[strings.LastIndex(key, ".")+1:] }

func keys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// flagSetName is the command a FlagSet is named after: "apikey create",
// or "rollout" for "rollout "+args[0].
func flagSetName(e ast.Expr) string {
	if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
		e = b.X
	}
	if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
		v, _ := strconv.Unquote(lit.Value)
		return strings.TrimSpace(v)
	}
	return ""
}

// literal is the default a read gives, as the docs would show it, when it
// is a non-zero literal: "info", 3, 10*time.Second ("10s").
func literal(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.BasicLit:
		v := e.Value
		if e.Kind == token.STRING {
			v, _ = strconv.Unquote(e.Value)
		}
		if v == "0" {
			return ""
		}
		return v
	case *ast.BinaryExpr:
		lit, ok1 := e.X.(*ast.BasicLit)
		sel, ok2 := e.Y.(*ast.SelectorExpr)
		if !ok1 || !ok2 || e.Op != token.MUL || lit.Kind != token.INT {
			return ""
		}
		n, _ := strconv.Atoi(lit.Value)
		units := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute, "Hour": time.Hour}
		if u, ok := units[sel.Sel.Name]; ok {
			return (time.Duration(n) * u).String()
		}
	}
	return ""
}

// callOf is the call whose function is the node at the top of stack, or
// nil when that node is not called there (a function handed over).
func callOf(stack []ast.Node) *ast.CallExpr {
	if len(stack) < 2 {
		return nil
	}
	if c, ok := stack[len(stack)-2].(*ast.CallExpr); ok && c.Fun == stack[len(stack)-1] {
		return c
	}
	return nil
}

// readsOf is every variable key reads, through the functions it calls
// (past the gates their calls close).
func (s *source) readsOf(key string) map[string][]read {
	out := map[string][]read{}
	type visit struct {
		key  string
		call *ast.CallExpr
	}
	seen := map[visit]bool{}
	var walk func(string, *ast.CallExpr)
	walk = func(k string, call *ast.CallExpr) {
		f := s.funcs[k]
		if f == nil || seen[visit{k, call}] {
			return
		}
		seen[visit{k, call}] = true
		for _, r := range f.reads {
			if r.gate.open(call) {
				out[r.name] = append(out[r.name], r)
			}
		}
		for _, e := range f.calls {
			if e.gate.open(call) {
				walk(e.key, e.call)
			}
		}
	}
	walk(key, nil)
	return out
}

// reachable are the functions key calls, directly or not, itself included.
func (s *source) reachable(key string) []*fn {
	var out []*fn
	seen := map[string]bool{}
	var walk func(string)
	walk = func(k string) {
		if f := s.funcs[k]; f != nil && !seen[k] {
			seen[k] = true
			out = append(out, f)
			for _, e := range f.calls {
				walk(e.key)
			}
		}
	}
	walk(key)
	return out
}

// commandsReading returns, for each variable, the commands that read it as
// the declaration names them: a command, or those of its subcommands (the
// functions making a FlagSet "<command> <sub>") that read it when not all
// do.
func (s *source) commandsReading() map[string][]string {
	out := map[string][]string{}
	add := func(v, c string) {
		if !slices.Contains(out[v], c) {
			out[v] = append(out[v], c)
		}
	}
	for name, key := range s.top {
		subs := map[string]map[string][]read{}
		for _, f := range s.reachable(key) {
			if strings.HasPrefix(f.command, name+" ") {
				subs[f.command] = s.readsOf(f.key)
			}
		}
		for v := range s.readsOf(key) {
			var readers []string
			for sub, reads := range subs {
				if _, ok := reads[v]; ok {
					readers = append(readers, sub)
				}
			}
			if len(subs) == 0 || len(readers) == len(subs) || len(readers) == 0 {
				add(v, name)
				continue
			}
			for _, r := range readers {
				add(v, r)
			}
		}
	}
	for v := range out {
		slices.Sort(out[v])
	}
	return out
}

// TestEveryVariableIsDeclared: the variables the code reads (through
// config.Env, the only reader) are exactly those vars.go declares, each read
// by exactly the commands it names (a subcommand where only some of a
// command's subcommands read it), with the default it shows where the code
// gives a literal one, and required only by commands that read it.
func TestEveryVariableIsDeclared(t *testing.T) {
	t.Parallel()
	s := loadSource(t)
	for _, p := range s.problems {
		t.Error(p)
	}
	reading := s.commandsReading()
	declared := map[string]config.Var{}
	for _, v := range config.Vars() {
		declared[v.Name] = v
	}
	var commands []string // every command and subcommand
	for name, key := range s.top {
		commands = append(commands, name)
		for _, f := range s.reachable(key) {
			if strings.HasPrefix(f.command, name+" ") {
				commands = append(commands, f.command)
			}
		}
	}
	for name, cmds := range reading {
		v, ok := declared[name]
		if !ok {
			var at []string
			for _, f := range s.funcs {
				for _, r := range f.reads {
					if r.name == name {
						at = append(at, r.pos)
					}
				}
			}
			t.Errorf("%s is read (%s) but not declared in internal/config/vars.go", name, strings.Join(at, ", "))
			continue
		}
		if want := slices.Sorted(slices.Values(v.Commands)); !slices.Equal(cmds, want) {
			t.Errorf("%s is read by %v; vars.go says %v", name, cmds, want)
		}
	}
	for _, v := range declared {
		if _, ok := reading[v.Name]; !ok {
			t.Errorf("vars.go declares %s, which no command reads", v.Name)
		}
		for _, c := range v.Commands {
			if !slices.Contains(commands, c) {
				t.Errorf("vars.go: %s is read by %q, which is no command (%v)", v.Name, c, slices.Sorted(slices.Values(commands)))
			}
		}
		for _, c := range v.Required {
			if !slices.Contains(v.Commands, c) {
				t.Errorf("vars.go: %s is required by %q, which does not read it", v.Name, c)
			}
		}
		if v.Help == "" || v.Doc == "" || strings.Contains(v.Help, "\n") || strings.Contains(v.Help, "`") {
			t.Errorf("vars.go: %s needs a one-line plain Help and a Doc", v.Name)
		}
	}
	// The defaults shown are the ones the code gives, where it gives a literal.
	for _, f := range s.funcs {
		for _, r := range f.reads {
			if v, ok := declared[r.name]; ok && r.def != "" && strings.Trim(v.Default, "`") != r.def {
				t.Errorf("%s: %s defaults to %q; vars.go shows %q", r.pos, r.name, r.def, v.Default)
			}
		}
	}
}

// TestOnlyConfigReadsTheEnvironment: no package of the binary but this one
// calls os.Getenv or os.LookupEnv, so every variable it reads goes through
// config.Env (and is declared).
func TestOnlyConfigReadsTheEnvironment(t *testing.T) {
	t.Parallel()
	fset := token.NewFileSet()
	seen := map[string]bool{}
	queue := []string{module + "/" + cmdDir}
	for len(queue) > 0 {
		pkg := queue[0]
		queue = queue[1:]
		if seen[pkg] {
			continue
		}
		seen[pkg] = true
		dir := filepath.Join(root, strings.TrimPrefix(pkg, module+"/"))
		paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(paths) == 0 {
			t.Fatalf("package %s: no Go files in %s (%v)", pkg, dir, err)
		}
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			for _, imp := range f.Imports {
				if path, _ := strconv.Unquote(imp.Path.Value); strings.HasPrefix(path, module+"/") {
					queue = append(queue, path)
				}
			}
			if pkg == module+"/"+confDir {
				continue
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if sel, ok := n.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "os" && (sel.Sel.Name == "Getenv" || sel.Sel.Name == "LookupEnv") {
						t.Errorf("%s: os.%s: the binary reads its environment through internal/config (declared in vars.go)", fset.Position(n.Pos()), sel.Sel.Name)
					}
				}
				return true
			})
		}
	}
	if len(seen) < 10 {
		t.Fatalf("walked %d packages of the binary: %v", len(seen), seen)
	}
}

// Reading a variable vars.go does not declare is a programming error that
// stops the command at once, naming the variable and where to declare it.
func TestUndeclaredVariablePanics(t *testing.T) {
	t.Parallel()
	env := &config.Env{Lookup: func(string) (string, bool) { return "x", true }}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "EXO_NOT_DECLARED") || !strings.Contains(fmt.Sprint(r), "vars.go") {
			t.Errorf("reading an undeclared variable: recovered %v, want a panic naming it and vars.go", r)
		}
	}()
	env.String("EXO_NOT_DECLARED", "")
}
