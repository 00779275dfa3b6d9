package main

import (
	"encoding/json"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	cmd  string // upper case
	args string
	line int
}

// dockerStage is a FROM and the instructions up to the next one.
type dockerStage struct {
	from, name string
	ins        []dockerInstruction
}

// parseDockerfile splits a Dockerfile into the ARGs before the first FROM
// and its stages (enough of the format for the checks below: comments,
// line continuations, `FROM image AS name`).
func parseDockerfile(t *testing.T, text string) (global []dockerInstruction, stages []dockerStage) {
	t.Helper()
	var cur strings.Builder
	start := 0
	flush := func() {
		s := strings.TrimSpace(cur.String())
		cur.Reset()
		if s == "" {
			return
		}
		cmd, args, _ := strings.Cut(s, " ")
		in := dockerInstruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start}
		switch {
		case in.cmd == "FROM":
			f := strings.Fields(in.args)
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			st := dockerStage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
		case len(stages) == 0:
			global = append(global, in)
		default:
			stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
		}
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue // a comment, also inside a continuation
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if body, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return global, stages
}

// words splits shell-like words: whitespace separates, double or single
// quotes group (and are removed), a backslash escapes in double quotes.
func words(s string) []string {
	var out []string
	var w strings.Builder
	in, quote := false, rune(0)
	for i := 0; i < len(s); i++ {
		c := rune(s[i])
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote == '"' && c == '\\' && i+1 < len(s):
			i++
			w.WriteByte(s[i])
		case quote != 0:
			w.WriteRune(c)
		case c == '"' || c == '\'':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				out = append(out, w.String())
				w.Reset()
				in = false
			}
		default:
			w.WriteRune(c)
			in = true
		}
	}
	if in {
		out = append(out, w.String())
	}
	return out
}

var dockerVar = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// expand substitutes ${NAME} and $NAME from vars.
func expand(s string, vars map[string]string) string {
	return dockerVar.ReplaceAllStringFunc(s, func(m string) string {
		sm := dockerVar.FindStringSubmatch(m)
		return vars[sm[1]+sm[2]]
	})
}

// argDefaults are the defaults of ARG instructions.
func argDefaults(ins []dockerInstruction) map[string]string {
	vars := map[string]string{}
	for _, in := range ins {
		if in.cmd != "ARG" {
			continue
		}
		for _, w := range words(in.args) {
			k, v, _ := strings.Cut(w, "=")
			vars[k] = v
		}
	}
	return vars
}

// The Dockerfile builds the image make image builds: its final stage is an
// empty base holding what tools/mkimage -rootfs wrote, with the same user,
// entrypoint, ports and labels as the image tools/mkimage assembles, and its
// build stage calls tools/mkimage with flags it has, on the Go version of
// go.mod.
func TestDockerfileMatches(t *testing.T) {
	t.Parallel()
	root := srcDir(t)
	text, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	global, stages := parseDockerfile(t, string(text))
	if len(stages) != 2 {
		t.Fatalf("the Dockerfile has %d stages, want a build stage and the image", len(stages))
	}
	buildStage, final := stages[0], stages[1]

	// The build stage: golang of go.mod's version, running mkimage -rootfs.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	if want := "golang:" + string(goLine[1]); expand(buildStage.from, argDefaults(global)) != want {
		t.Errorf("the build stage is FROM %s (GO_VERSION %q), want %s: go.mod says go %s", buildStage.from, argDefaults(global)["GO_VERSION"], want, goLine[1])
	}
	var mkimageRun string
	for _, in := range buildStage.ins {
		if in.cmd == "RUN" && strings.Contains(in.args, "tools/mkimage") && strings.Contains(in.args, "go run .") {
			mkimageRun = in.args
		}
	}
	if mkimageRun == "" {
		t.Fatal("the build stage does not run tools/mkimage (go run . in tools/mkimage)")
	}
	var o options
	defined := map[string]bool{}
	newFlags(&o).VisitAll(func(f *flag.Flag) { defined[f.Name] = true })
	_, mkArgs, _ := strings.Cut(mkimageRun, "go run .")
	used := map[string]string{}
	ws := words(mkArgs)
	for i, w := range ws {
		if name, ok := strings.CutPrefix(w, "-"); ok && i+1 < len(ws) {
			if !defined[name] {
				t.Errorf("the Dockerfile passes mkimage -%s, which it does not have", name)
			}
			used[name] = ws[i+1]
		}
	}
	for _, name := range []string{"src", "version", "revision", "platform"} {
		if _, ok := used[name]; !ok {
			t.Errorf("the Dockerfile does not pass mkimage -%s", name)
		}
	}
	if used["rootfs"] != "/rootfs" {
		t.Errorf("the Dockerfile runs mkimage with -rootfs %q, want /rootfs (the final stage copies it)", used["rootfs"])
	}

	// The final stage: scratch + the rootfs, and the runtime configuration.
	if final.from != "scratch" {
		t.Errorf("the image is FROM %s, want scratch (no shell, nothing but the binary)", final.from)
	}
	b := sharedBuild(t)
	img, _ := layoutImage(t, b.opts.OCIDir)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	vars := argDefaults(final.ins)
	vars["VERSION"], vars["REVISION"] = testVersion, testRevision
	var (
		copies, usr []string
		entrypoint  []string
		ports       = map[string]struct{}{}
		labels      = map[string]string{}
	)
	for _, in := range final.ins {
		switch in.cmd {
		case "COPY":
			copies = append(copies, in.args)
		case "USER":
			usr = append(usr, in.args)
		case "EXPOSE":
			for _, p := range words(in.args) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				ports[p] = struct{}{}
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entrypoint); err != nil {
				t.Errorf("line %d: ENTRYPOINT %s is not the exec form (the shell form needs /bin/sh): %v", in.line, in.args, err)
			}
		case "LABEL":
			for _, w := range words(in.args) {
				k, v, _ := strings.Cut(w, "=")
				labels[k] = expand(v, vars)
			}
		case "ARG":
		default:
			t.Errorf("line %d: %s in the final stage: make image sets nothing of the kind", in.line, in.cmd)
		}
	}
	if !slices.Equal(copies, []string{"--from=" + buildStage.name + " /rootfs/ /"}) {
		t.Errorf("the final stage copies %q, want only the build stage's /rootfs/ (what mkimage -rootfs wrote)", copies)
	}
	if !slices.Equal(usr, []string{cf.Config.User}) {
		t.Errorf("the Dockerfile's USER is %q, make image's %q", usr, cf.Config.User)
	}
	if !slices.Equal(entrypoint, cf.Config.Entrypoint) {
		t.Errorf("the Dockerfile's ENTRYPOINT is %q, make image's %q", entrypoint, cf.Config.Entrypoint)
	}
	if !maps.Equal(ports, cf.Config.ExposedPorts) {
		t.Errorf("the Dockerfile exposes %v, make image %v", slices.Sorted(maps.Keys(ports)), slices.Sorted(maps.Keys(cf.Config.ExposedPorts)))
	}
	if !maps.Equal(labels, cf.Config.Labels) {
		t.Errorf("the Dockerfile's labels (VERSION=%s REVISION=%s) are\n%v\nmake image's\n%v", testVersion, testRevision, labels, cf.Config.Labels)
	}

	// Every exposed port is a default listen port of a component.
	commands, err := os.ReadFile(filepath.Join(root, "cmd", "exo-alerts", "commands.go"))
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]bool{}
	for _, m := range regexp.MustCompile(`"127\.0\.0\.1:(\d+)"`).FindAllSubmatch(commands, -1) {
		defaults[string(m[1])+"/tcp"] = true
	}
	for p := range cf.Config.ExposedPorts {
		if !defaults[p] {
			t.Errorf("the image exposes %s, which no component listens on by default (cmd/exo-alerts/commands.go)", p)
		}
	}

	// The build context leaves out VCS data and build output.
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", "bin"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not leave out %s", want)
		}
	}
}
