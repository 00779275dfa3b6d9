package check

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	ctyyaml "github.com/zclconf/go-cty-yaml"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// Module is a Terraform module's configuration, as far as the checks read it.
type Module struct {
	Dir       string
	Sources   map[string][]byte // file name => its bytes
	Terraform []*hcl.Block
	Variables map[string]*Variable
	Locals    map[string]*hcl.Attribute
	Resources map[string]*Resource // "type.name"
	Outputs   map[string]*Output
	// Other top-level blocks (provider, module, data): the module is meant
	// to have none (the caller configures the providers).
	Others []*hcl.Block
}

// Variable is a variable block.
type Variable struct {
	Name        string
	Description string
	Type        cty.Type
	Defaults    *typeexpr.Defaults
	Default     hcl.Expression // nil: required
	Validations []Validation
	HasType     bool
	Range       hcl.Range
}

// Validation is a variable's validation block.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
}

// Resource is a resource block.
type Resource struct {
	Type, Name     string
	ForEach        hcl.Expression
	DependsOn      hcl.Expression
	PreventDestroy bool
	Attributes     hcl.Attributes
	Range          hcl.Range
}

// Output is an output block.
type Output struct {
	Name        string
	Description string
	Value       hcl.Expression
}

var rootSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "terraform"},
	{Type: "variable", LabelNames: []string{"name"}},
	{Type: "locals"},
	{Type: "resource", LabelNames: []string{"type", "name"}},
	{Type: "output", LabelNames: []string{"name"}},
	{Type: "provider", LabelNames: []string{"name"}},
	{Type: "module", LabelNames: []string{"name"}},
	{Type: "data", LabelNames: []string{"type", "name"}},
}}

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "description"}, {Name: "type"}, {Name: "default"}, {Name: "sensitive"}, {Name: "nullable"}},
	Blocks:     []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "condition", Required: true}, {Name: "error_message", Required: true},
}}

var outputSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "description"}, {Name: "value", Required: true}, {Name: "sensitive"}, {Name: "depends_on"},
}}

var lifecycleSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "prevent_destroy"}, {Name: "create_before_destroy"}, {Name: "ignore_changes"}, {Name: "replace_triggered_by"},
}}

// Load parses every .tf file of dir.
func Load(dir string) (*Module, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no .tf file in %s", dir)
	}
	sort.Strings(names)
	m := &Module{
		Dir: dir, Sources: map[string][]byte{}, Variables: map[string]*Variable{}, Locals: map[string]*hcl.Attribute{},
		Resources: map[string]*Resource{}, Outputs: map[string]*Output{},
	}
	p := hclparse.NewParser()
	var diags hcl.Diagnostics
	for _, name := range names {
		src, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		m.Sources[filepath.Base(name)] = src
		f, d := p.ParseHCL(src, name)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		content, d := f.Body.Content(rootSchema)
		diags = append(diags, d...)
		for _, b := range content.Blocks {
			diags = append(diags, m.addBlock(b)...)
		}
	}
	if diags.HasErrors() {
		return nil, diagError(p, diags)
	}
	return m, nil
}

func (m *Module) addBlock(b *hcl.Block) hcl.Diagnostics {
	dup := func(kind, name string) hcl.Diagnostics {
		return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "duplicate " + kind + " " + name, Subject: &b.DefRange}}
	}
	switch b.Type {
	case "terraform":
		m.Terraform = append(m.Terraform, b)
	case "variable":
		if m.Variables[b.Labels[0]] != nil {
			return dup("variable", b.Labels[0])
		}
		v, diags := decodeVariable(b)
		m.Variables[v.Name] = v
		return diags
	case "locals":
		attrs, diags := b.Body.JustAttributes()
		for name, a := range attrs {
			if m.Locals[name] != nil {
				diags = append(diags, dup("local", name)...)
			}
			m.Locals[name] = a
		}
		return diags
	case "resource":
		key := b.Labels[0] + "." + b.Labels[1]
		if m.Resources[key] != nil {
			return dup("resource", key)
		}
		r, diags := decodeResource(b)
		m.Resources[key] = r
		return diags
	case "output":
		if m.Outputs[b.Labels[0]] != nil {
			return dup("output", b.Labels[0])
		}
		content, diags := b.Body.Content(outputSchema)
		o := &Output{Name: b.Labels[0]}
		if a := content.Attributes["description"]; a != nil {
			diags = append(diags, gohcl(a.Expr, &o.Description)...)
		}
		if a := content.Attributes["value"]; a != nil {
			o.Value = a.Expr
		}
		m.Outputs[o.Name] = o
		return diags
	default:
		m.Others = append(m.Others, b)
	}
	return nil
}

func decodeVariable(b *hcl.Block) (*Variable, hcl.Diagnostics) {
	v := &Variable{Name: b.Labels[0], Type: cty.DynamicPseudoType, Range: b.DefRange}
	content, diags := b.Body.Content(variableSchema)
	if a := content.Attributes["description"]; a != nil {
		diags = append(diags, gohcl(a.Expr, &v.Description)...)
	}
	if a := content.Attributes["type"]; a != nil {
		ty, defaults, d := typeexpr.TypeConstraintWithDefaults(a.Expr)
		diags = append(diags, d...)
		v.Type, v.Defaults, v.HasType = ty, defaults, true
	}
	if a := content.Attributes["default"]; a != nil {
		v.Default = a.Expr
	}
	for _, vb := range content.Blocks {
		vc, d := vb.Body.Content(validationSchema)
		diags = append(diags, d...)
		if !d.HasErrors() {
			v.Validations = append(v.Validations, Validation{Condition: vc.Attributes["condition"].Expr, ErrorMessage: vc.Attributes["error_message"].Expr})
		}
	}
	return v, diags
}

func decodeResource(b *hcl.Block) (*Resource, hcl.Diagnostics) {
	r := &Resource{Type: b.Labels[0], Name: b.Labels[1], Range: b.DefRange, Attributes: hcl.Attributes{}}
	body, ok := b.Body.(*hclsyntax.Body)
	if !ok {
		return r, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "not native HCL syntax", Subject: &b.DefRange}}
	}
	var diags hcl.Diagnostics
	for name, a := range body.Attributes {
		switch name {
		case "for_each":
			r.ForEach = a.Expr
		case "depends_on":
			r.DependsOn = a.Expr
		case "count":
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "count is not supported by these checks; use for_each", Subject: a.SrcRange.Ptr()})
		case "provider":
		default:
			r.Attributes[name] = a.AsHCLAttribute()
		}
	}
	for _, lb := range body.Blocks {
		if lb.Type != "lifecycle" {
			// Nested blocks (helm_release's set) are not read by these
			// checks: the module passes values instead.
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: fmt.Sprintf("block %q is not supported by these checks", lb.Type), Subject: lb.TypeRange.Ptr()})
			continue
		}
		lc, d := lb.Body.Content(lifecycleSchema)
		diags = append(diags, d...)
		if a := lc.Attributes["prevent_destroy"]; a != nil {
			diags = append(diags, gohcl(a.Expr, &r.PreventDestroy)...)
		}
	}
	return r, diags
}

// gohcl evaluates a constant expression into a string or bool.
func gohcl(expr hcl.Expression, into any) hcl.Diagnostics {
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		return diags
	}
	switch p := into.(type) {
	case *string:
		v, err := convert.Convert(v, cty.String)
		if err != nil || v.IsNull() {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "want a string", Subject: expr.Range().Ptr()}}
		}
		*p = v.AsString()
	case *bool:
		v, err := convert.Convert(v, cty.Bool)
		if err != nil || v.IsNull() {
			return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "want a bool", Subject: expr.Range().Ptr()}}
		}
		*p = v.True()
	}
	return nil
}

func diagError(p *hclparse.Parser, diags hcl.Diagnostics) error {
	var b strings.Builder
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s: ", d.Subject)
		}
		fmt.Fprintf(&b, "%s", d.Summary)
		if d.Detail != "" {
			fmt.Fprintf(&b, ": %s", d.Detail)
		}
		b.WriteString("\n")
	}
	_ = p
	return errors.New(strings.TrimSpace(b.String()))
}

// Functions are the Terraform functions the module may call, from go-cty
// (Terraform's own implementations of them) and HCL's try and can.
func Functions() map[string]function.Function {
	return map[string]function.Function{
		"abs": stdlib.AbsoluteFunc, "alltrue": allTrueFunc, "anytrue": anyTrueFunc, "can": tryfunc.CanFunc,
		"ceil": stdlib.CeilFunc, "coalesce": stdlib.CoalesceFunc, "coalescelist": stdlib.CoalesceListFunc,
		"compact": stdlib.CompactFunc, "concat": stdlib.ConcatFunc, "contains": stdlib.ContainsFunc,
		"distinct": stdlib.DistinctFunc, "element": stdlib.ElementFunc, "flatten": stdlib.FlattenFunc,
		"floor": stdlib.FloorFunc, "format": stdlib.FormatFunc, "join": stdlib.JoinFunc, "jsonencode": stdlib.JSONEncodeFunc,
		"keys": stdlib.KeysFunc, "length": stdlib.LengthFunc, "lookup": stdlib.LookupFunc, "lower": stdlib.LowerFunc,
		"max": stdlib.MaxFunc, "merge": stdlib.MergeFunc, "min": stdlib.MinFunc, "regex": stdlib.RegexFunc,
		"sort": stdlib.SortFunc, "split": stdlib.SplitFunc, "startswith": startsWithFunc, "trimprefix": stdlib.TrimPrefixFunc,
		"trimsuffix": stdlib.TrimSuffixFunc, "try": tryfunc.TryFunc, "upper": stdlib.UpperFunc, "values": stdlib.ValuesFunc,
		"yamlencode": ctyyaml.YAMLEncodeFunc, "zipmap": stdlib.ZipmapFunc,
		"tostring": stdlib.MakeToFunc(cty.String), "tonumber": stdlib.MakeToFunc(cty.Number),
		"tobool": stdlib.MakeToFunc(cty.Bool), "tolist": stdlib.MakeToFunc(cty.List(cty.DynamicPseudoType)),
		"toset": stdlib.MakeToFunc(cty.Set(cty.DynamicPseudoType)), "tomap": stdlib.MakeToFunc(cty.Map(cty.DynamicPseudoType)),
	}
}

var allTrueFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			_, v := it.Element()
			if v.IsNull() || v.False() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})

var anyTrueFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for it := args[0].ElementIterator(); it.Next(); {
			_, v := it.Element()
			if !v.IsNull() && v.True() {
				return cty.True, nil
			}
		}
		return cty.False, nil
	},
})

var startsWithFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "str", Type: cty.String}, {Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return cty.BoolVal(strings.HasPrefix(args[0].AsString(), args[1].AsString())), nil
	},
})

// Evaluated is the module evaluated for a set of input variables.
type Evaluated struct {
	Vars   map[string]cty.Value
	Locals map[string]cty.Value
	// Resources: "type.name" => instance key => attribute => value.
	Resources map[string]map[string]map[string]cty.Value
	Outputs   map[string]cty.Value
}

// Evaluate evaluates the module for inputs the way Terraform plans it:
// every variable converted to its type with its defaults and validated,
// every local, every resource instance's arguments, and every output
// (attributes only a provider knows, such as a release's status, are
// unknown).
func (m *Module) Evaluate(inputs map[string]cty.Value) (*Evaluated, error) {
	e := &Evaluated{Vars: map[string]cty.Value{}, Locals: map[string]cty.Value{}, Resources: map[string]map[string]map[string]cty.Value{}, Outputs: map[string]cty.Value{}}
	for name := range inputs {
		if m.Variables[name] == nil {
			return nil, fmt.Errorf("input %s: no such variable", name)
		}
	}
	var errs []error
	for _, name := range sortedKeys(m.Variables) {
		v := m.Variables[name]
		val, err := v.value(inputs)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		e.Vars[name] = val
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// Validations see only their own variable (Terraform before 1.9).
	for _, name := range sortedKeys(m.Variables) {
		v := m.Variables[name]
		ctx := &hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: e.Vars[name]})}, Functions: Functions()}
		for _, val := range v.Validations {
			ok, diags := val.Condition.Value(ctx)
			if diags.HasErrors() {
				errs = append(errs, fmt.Errorf("variable %s: validation: %s", name, diags.Error()))
				continue
			}
			if ok.IsNull() || !ok.Type().Equals(cty.Bool) {
				errs = append(errs, fmt.Errorf("variable %s: a validation condition is not a bool", name))
				continue
			}
			if ok.False() {
				msg, _ := val.ErrorMessage.Value(ctx)
				text := "(no message)"
				if msg.Type() == cty.String && !msg.IsNull() {
					text = msg.AsString()
				}
				errs = append(errs, &ValidationError{Variable: name, Message: text})
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	ctx := &hcl.EvalContext{Variables: map[string]cty.Value{
		"var":  cty.ObjectVal(e.Vars),
		"path": cty.ObjectVal(map[string]cty.Value{"module": cty.StringVal(m.Dir)}),
	}, Functions: Functions()}
	if err := m.evalLocals(ctx, e); err != nil {
		return nil, err
	}
	if err := m.evalResources(ctx, e); err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(m.Outputs) {
		v, diags := m.Outputs[name].Value.Value(ctx)
		if diags.HasErrors() {
			errs = append(errs, fmt.Errorf("output %s: %s", name, diags.Error()))
			continue
		}
		e.Outputs[name] = v
	}
	return e, errors.Join(errs...)
}

// ValidationError is a variable's validation that failed.
type ValidationError struct{ Variable, Message string }

func (e *ValidationError) Error() string {
	return fmt.Sprintf("variable %s: invalid value: %s", e.Variable, e.Message)
}

func (v *Variable) value(inputs map[string]cty.Value) (cty.Value, error) {
	val, given := inputs[v.Name]
	if !given {
		if v.Default == nil {
			return cty.NilVal, fmt.Errorf("variable %s is required", v.Name)
		}
		d, diags := v.Default.Value(nil)
		if diags.HasErrors() {
			return cty.NilVal, fmt.Errorf("variable %s: default: %s", v.Name, diags.Error())
		}
		val = d
	}
	if v.Defaults != nil && !val.IsNull() {
		val = v.Defaults.Apply(val)
	}
	val, err := convert.Convert(val, v.Type)
	if err != nil {
		return cty.NilVal, fmt.Errorf("variable %s: %w", v.Name, err)
	}
	return val, nil
}

func (m *Module) evalLocals(ctx *hcl.EvalContext, e *Evaluated) error {
	pending := maps.Clone(m.Locals)
	for len(pending) > 0 {
		progress := false
		for _, name := range sortedKeys(pending) {
			a := pending[name]
			ready := true
			for _, tr := range a.Expr.Variables() {
				if tr.RootName() != "local" || len(tr) < 2 {
					continue
				}
				if ref, ok := tr[1].(hcl.TraverseAttr); ok {
					if _, done := e.Locals[ref.Name]; !done {
						if m.Locals[ref.Name] == nil {
							return fmt.Errorf("%s: local.%s is not defined", a.Range, ref.Name)
						}
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			ctx.Variables["local"] = cty.ObjectVal(e.Locals)
			v, diags := a.Expr.Value(ctx)
			if diags.HasErrors() {
				return fmt.Errorf("local.%s: %s", name, diags.Error())
			}
			e.Locals[name] = v
			delete(pending, name)
			progress = true
		}
		if !progress {
			return fmt.Errorf("locals refer to each other in a cycle: %s", strings.Join(sortedKeys(pending), ", "))
		}
	}
	ctx.Variables["local"] = cty.ObjectVal(e.Locals)
	return nil
}

// providerComputed are the attributes a provider sets, unknown at plan.
var providerComputed = map[string][]string{
	"helm_release": {"status", "version", "id"},
	"kafka_topic":  {"id"},
	"kafka_acl":    {"id"},
}

func (m *Module) evalResources(ctx *hcl.EvalContext, e *Evaluated) error {
	byType := map[string]map[string]cty.Value{}
	for _, key := range sortedKeys(m.Resources) {
		r := m.Resources[key]
		instances := map[string]cty.Value{"": cty.NilVal} // no for_each: one instance
		if r.ForEach != nil {
			fe, diags := r.ForEach.Value(ctx)
			if diags.HasErrors() {
				return fmt.Errorf("%s for_each: %s", key, diags.Error())
			}
			if !fe.Type().IsMapType() && !fe.Type().IsObjectType() && !fe.Type().IsSetType() {
				return fmt.Errorf("%s for_each: a map or a set of strings is required, not %s", key, fe.Type().FriendlyName())
			}
			instances = map[string]cty.Value{}
			for it := fe.ElementIterator(); it.Next(); {
				k, v := it.Element()
				if k.Type() != cty.String {
					return fmt.Errorf("%s for_each: a set must hold strings", key)
				}
				if fe.Type().IsSetType() {
					v = k
				}
				instances[k.AsString()] = v
			}
		}
		e.Resources[key] = map[string]map[string]cty.Value{}
		objs := map[string]cty.Value{}
		for ik, iv := range instances {
			ictx := ctx.NewChild()
			if r.ForEach != nil {
				ictx.Variables = map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": cty.StringVal(ik), "value": iv})}
			}
			attrs := map[string]cty.Value{}
			for name, a := range r.Attributes {
				v, diags := a.Expr.Value(ictx)
				if diags.HasErrors() {
					return fmt.Errorf("%s[%q].%s: %s", key, ik, name, diags.Error())
				}
				attrs[name] = v
			}
			for _, name := range providerComputed[r.Type] {
				if _, set := attrs[name]; !set {
					attrs[name] = cty.UnknownVal(cty.String)
				}
			}
			e.Resources[key][ik] = attrs
			objs[ik] = cty.ObjectVal(attrs)
		}
		if byType[r.Type] == nil {
			byType[r.Type] = map[string]cty.Value{}
		}
		if r.ForEach != nil {
			byType[r.Type][r.Name] = cty.ObjectVal(objs)
		} else {
			byType[r.Type][r.Name] = objs[""]
		}
	}
	for t, rs := range byType {
		ctx.Variables[t] = cty.ObjectVal(rs)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
