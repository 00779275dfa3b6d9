package condition

import (
	"strings"

	"github.com/expr-lang/expr/ast"
)

// Most conditions are a few comparisons of an event's fields with constants
// (labels.env == "prod" && run.attempt >= 2, error.code in ["TIMEOUT"],
// workflow.name startsWith "nightly"). Running such a condition on expr's
// VM costs ~0.5 µs and, for a label, an allocation (the VM copies the map's
// value out through reflection); the same comparisons in Go cost a few
// nanoseconds. So Compile also compiles a condition of that shape to a Go
// predicate (native), and Match runs the predicate instead of the VM when
// it has one. The predicate decides exactly as the VM does
// (TestNativeMatchesVM, FuzzNativeMatchesVM): the shape admits no run-time
// error, and an evaluation that could go over the scan budget (a field read
// by in or contains longer than MaxScan) runs on the VM, which stops it
// with the same error as before. Anything else — builtins, arithmetic,
// matches, predicates, field against field — compiles to the VM only.
//
// The shape (after the allow-list and expr's own compilation accepted it):
//
//	cond  := cond (&& | and | || | or) cond | (! | not) cond | true | false | cmp
//	cmp   := field op const | const op field
//	field := event.id | event.type | event.source | workflow.id | workflow.name
//	       | run.id | run.status | error.code | error.message | error.node
//	       | labels.<name> | labels["<name>"]          (strings)
//	       | run.attempt | run.duration_ms             (integers)
//	op    := == | != | < | > | <= | >=                  (a string or an integer constant)
//	       | in [const, ...]                            (constants of the field's type)
//	       | contains | startsWith | endsWith           (strings; a string constant)
//
// (`a not in b` and the like are parsed as not (a in b).)

// native is a condition compiled to Go.
type native struct {
	eval func(*Env) bool
	// scanned are the string fields the VM charges to the scan budget when
	// it reads them (budgetPatch): the needle of in, the operands of
	// contains, the prefix of startsWith and endsWith. An evaluation reads
	// each at most once per occurrence; when their bytes (plus one each)
	// could exceed MaxScan, Match runs the VM instead.
	scanned []field
}

// fieldKind names a field of Env.
type fieldKind uint8

const (
	fEventID fieldKind = iota + 1
	fEventType
	fEventSource
	fWorkflowID
	fWorkflowName
	fRunID
	fRunStatus
	fErrorCode
	fErrorMessage
	fErrorNode
	fLabel
	fRunAttempt    // integer
	fRunDurationMS // integer
)

// field is a field a native condition reads.
type field struct {
	kind  fieldKind
	label string // of fLabel
}

func (f field) isInt() bool { return f.kind == fRunAttempt || f.kind == fRunDurationMS }

// str is a string field's value in env (a label the run does not have
// is "", as in the VM).
func (f field) str(env *Env) string {
	switch f.kind {
	case fEventID:
		return env.Event.ID
	case fEventType:
		return env.Event.Type
	case fEventSource:
		return env.Event.Source
	case fWorkflowID:
		return env.Workflow.ID
	case fWorkflowName:
		return env.Workflow.Name
	case fRunID:
		return env.Run.ID
	case fRunStatus:
		return env.Run.Status
	case fErrorCode:
		return env.Error.Code
	case fErrorMessage:
		return env.Error.Message
	case fErrorNode:
		return env.Error.Node
	case fLabel:
		return env.Labels[f.label]
	}
	return ""
}

// int is an integer field's value in env.
func (f field) int(env *Env) int64 {
	if f.kind == fRunAttempt {
		return int64(env.Run.Attempt)
	}
	return env.Run.DurationMS
}

// stringFields are the string fields by their names in conditions (the
// expr tags of Env).
var stringFields = map[[2]string]fieldKind{
	{"event", "id"}: fEventID, {"event", "type"}: fEventType, {"event", "source"}: fEventSource,
	{"workflow", "id"}: fWorkflowID, {"workflow", "name"}: fWorkflowName,
	{"run", "id"}: fRunID, {"run", "status"}: fRunStatus,
	{"error", "code"}: fErrorCode, {"error", "message"}: fErrorMessage, {"error", "node"}: fErrorNode,
	{"run", "attempt"}: fRunAttempt, {"run", "duration_ms"}: fRunDurationMS,
}

// fieldOf is the field n names, if it is one.
func fieldOf(n ast.Node) (field, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok || m.Optional || m.Method {
		return field{}, false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok {
		return field{}, false
	}
	prop, ok := m.Property.(*ast.StringNode)
	if !ok {
		return field{}, false
	}
	if id.Value == "labels" {
		return field{kind: fLabel, label: prop.Value}, true
	}
	k, ok := stringFields[[2]string{id.Value, prop.Value}]
	return field{kind: k}, ok
}

// compileNative compiles the parsed condition root to Go; its eval is nil
// when root is not of the native shape. Only called on a condition expr
// compiled.
func compileNative(root ast.Node) native {
	var n native
	eval, ok := n.cond(root)
	if !ok {
		return native{}
	}
	n.eval = eval
	return n
}

// cond compiles a boolean node.
func (n *native) cond(node ast.Node) (func(*Env) bool, bool) {
	switch x := node.(type) {
	case *ast.BoolNode:
		v := x.Value
		return func(*Env) bool { return v }, true
	case *ast.UnaryNode:
		if x.Operator != "!" && x.Operator != "not" {
			return nil, false
		}
		inner, ok := n.cond(x.Node)
		if !ok {
			return nil, false
		}
		return func(env *Env) bool { return !inner(env) }, true
	case *ast.BinaryNode:
		switch x.Operator {
		case "&&", "and", "||", "or":
			l, ok := n.cond(x.Left)
			if !ok {
				return nil, false
			}
			r, ok := n.cond(x.Right)
			if !ok {
				return nil, false
			}
			if x.Operator == "&&" || x.Operator == "and" {
				return func(env *Env) bool { return l(env) && r(env) }, true
			}
			return func(env *Env) bool { return l(env) || r(env) }, true
		}
		return n.cmp(x)
	}
	return nil, false
}

// flipped is the operator of a comparison with its operands swapped.
var flipped = map[string]string{"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}

// cmp compiles a comparison of a field with a constant.
func (n *native) cmp(x *ast.BinaryNode) (func(*Env) bool, bool) {
	op := x.Operator
	f, ok := fieldOf(x.Left)
	c := x.Right
	if !ok {
		// const op field: the ordering operators flip; in needs the field
		// on the left; contains, startsWith and endsWith are not symmetric.
		if f, ok = fieldOf(x.Right); !ok {
			return nil, false
		}
		c = x.Left
		switch op {
		case "contains", "startsWith", "endsWith":
			return n.strOp(op, f, c, true)
		}
		if op, ok = flipped[op]; !ok {
			return nil, false
		}
	}
	switch op {
	case "==", "!=", "<", ">", "<=", ">=":
		if f.isInt() {
			v, ok := intConst(c)
			if !ok {
				return nil, false
			}
			return intCmp(op, f, int64(v)), true
		}
		s, ok := c.(*ast.StringNode)
		if !ok {
			return nil, false
		}
		return strCmp(op, f, s.Value), true
	case "in":
		return n.in(f, c)
	case "contains", "startsWith", "endsWith":
		return n.strOp(op, f, c, false)
	}
	return nil, false
}

func intCmp(op string, f field, v int64) func(*Env) bool {
	switch op {
	case "==":
		return func(env *Env) bool { return f.int(env) == v }
	case "!=":
		return func(env *Env) bool { return f.int(env) != v }
	case "<":
		return func(env *Env) bool { return f.int(env) < v }
	case ">":
		return func(env *Env) bool { return f.int(env) > v }
	case "<=":
		return func(env *Env) bool { return f.int(env) <= v }
	}
	return func(env *Env) bool { return f.int(env) >= v }
}

func strCmp(op string, f field, v string) func(*Env) bool {
	switch op {
	case "==":
		return func(env *Env) bool { return f.str(env) == v }
	case "!=":
		return func(env *Env) bool { return f.str(env) != v }
	case "<":
		return func(env *Env) bool { return f.str(env) < v }
	case ">":
		return func(env *Env) bool { return f.str(env) > v }
	case "<=":
		return func(env *Env) bool { return f.str(env) <= v }
	}
	return func(env *Env) bool { return f.str(env) >= v }
}

// in compiles field in [constants]. A string needle is charged to the scan
// budget; an integer one is not (budgetPatch).
func (n *native) in(f field, list ast.Node) (func(*Env) bool, bool) {
	arr, ok := list.(*ast.ArrayNode)
	if !ok || len(arr.Nodes) == 0 {
		return nil, false
	}
	if f.isInt() {
		set := make(map[int64]bool, len(arr.Nodes))
		for _, e := range arr.Nodes {
			v, ok := intConst(e)
			if !ok {
				return nil, false
			}
			set[int64(v)] = true
		}
		return func(env *Env) bool { return set[f.int(env)] }, true
	}
	set := make(map[string]bool, len(arr.Nodes))
	for _, e := range arr.Nodes {
		s, ok := e.(*ast.StringNode)
		if !ok {
			return nil, false
		}
		set[s.Value] = true
	}
	n.scanned = append(n.scanned, f)
	if len(set) <= 4 {
		vals := make([]string, 0, len(set))
		for s := range set {
			vals = append(vals, s)
		}
		return func(env *Env) bool {
			s := f.str(env)
			for _, v := range vals {
				if s == v {
					return true
				}
			}
			return false
		}, true
	}
	return func(env *Env) bool { return set[f.str(env)] }, true
}

// strOp compiles field op constant (constFirst: constant op field) for
// contains, startsWith and endsWith, charging what budgetPatch charges:
// both operands of contains, the right one of startsWith and endsWith —
// the field's when it is not the constant.
func (n *native) strOp(op string, f field, c ast.Node, constFirst bool) (func(*Env) bool, bool) {
	if f.isInt() {
		return nil, false
	}
	s, ok := c.(*ast.StringNode)
	if !ok {
		return nil, false
	}
	v := s.Value
	if op == "contains" || constFirst {
		n.scanned = append(n.scanned, f)
	}
	switch {
	case op == "contains" && constFirst:
		return func(env *Env) bool { return strings.Contains(v, f.str(env)) }, true
	case op == "contains":
		return func(env *Env) bool { return strings.Contains(f.str(env), v) }, true
	case op == "startsWith" && constFirst:
		return func(env *Env) bool { return strings.HasPrefix(v, f.str(env)) }, true
	case op == "startsWith":
		return func(env *Env) bool { return strings.HasPrefix(f.str(env), v) }, true
	case constFirst: // endsWith
		return func(env *Env) bool { return strings.HasSuffix(v, f.str(env)) }, true
	}
	return func(env *Env) bool { return strings.HasSuffix(f.str(env), v) }, true
}

// withinScan says whether an evaluation on env cannot go over MaxScan: the
// bytes of every charged field, plus one each, fit.
func (n *native) withinScan(env *Env) bool {
	if len(n.scanned) == 0 {
		return true
	}
	total := 0
	for _, f := range n.scanned {
		total += len(f.str(env)) + 1
		if total > MaxScan {
			return false
		}
	}
	return true
}
