package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/exospherehost/exo-alerts/processor"
	"github.com/exospherehost/exo-alerts/schemas"
)

const validateUsage = `Usage: exo-alerts validate [flags] [file ...]

Judges workflow events exactly as the processor does (the same decoder) and
prints every problem with its path (a JSON Pointer into the event). With no
file, or "-", it reads stdin. A file holds, by -format (auto: guessed):
  event   one event in structured mode (application/cloudevents+json)
  batch   a JSON array of such events (application/cloudevents-batch+json)
  dump    Kafka records as JSON lines, one a line: {"key": "...",
          "headers": {"name": "value", ...}, "value": "..."}; "payload" for
          "value" and headers as ["name", "value", ...] are read too, so
          kcat -J output is a dump; a value that is not a string is taken as
          the JSON it is. Binary-mode records (ce_* headers) are judged as such.
Exit status: 0 every event valid, 1 some invalid, 2 usage or unreadable input.

Flags:
`

// cmdValidate is `exo-alerts validate`.
func cmdValidate(_ context.Context, args []string) error {
	return validate(args, os.Stdin, os.Stdout)
}

func validate(args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	format := fs.String("format", "auto", "input format: auto, event, batch or dump")
	strict := fs.Bool("strict-keys", false, "judge dump records' keys as EXO_PROCESSOR_STRICT_KEYS=on does")
	maxBytes := fs.Int("max-bytes", processor.MaxEventBytes, "largest event accepted, in bytes (the processor's limit)")
	quiet := fs.Bool("q", false, "print only the invalid events")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), validateUsage)
		fs.PrintDefaults()
	}
	if err := parseTo(fs, args, stdout); err != nil {
		return err
	}
	switch *format {
	case "auto", "event", "batch", "dump":
	default:
		return usageErr("validate: -format %q: want auto, event, batch or dump", *format)
	}
	if *maxBytes < 1024 {
		return usageErr("validate: -max-bytes must be >= 1024 (as the processor's)")
	}
	files := fs.Args()
	if len(files) == 0 {
		files = []string{"-"}
	}
	v := validator{out: stdout, opts: processor.CheckOptions{MaxEventBytes: *maxBytes, StrictKeys: *strict}, quiet: *quiet}
	for _, name := range files {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(stdin)
			name = "stdin"
		} else {
			data, err = os.ReadFile(name) //nolint:gosec // G304: the operator names the file to check
		}
		if err != nil {
			return usageErr("validate: %v", err)
		}
		if err := v.input(name, data, *format); err != nil {
			return err
		}
	}
	if !*quiet || v.invalid > 0 {
		fmt.Fprintf(stdout, "%d valid, %d invalid\n", v.valid, v.invalid)
	}
	if v.invalid > 0 {
		return &exitError{code: 1}
	}
	return nil
}

type validator struct {
	out            io.Writer
	opts           processor.CheckOptions
	quiet          bool
	valid, invalid int
}

// input judges the events of one input.
func (v *validator) input(name string, data []byte, format string) error {
	if format == "auto" {
		format = guessFormat(data)
	}
	structured := []kgo.RecordHeader{{Key: "content-type", Value: []byte("application/cloudevents+json")}}
	switch format {
	case "event":
		v.judge(name, &kgo.Record{Value: data, Headers: structured}, false)
	case "batch":
		var events []json.RawMessage
		if err := json.Unmarshal(data, &events); err != nil {
			return usageErr("validate: %s: not a batch (a JSON array of events): %v", name, err)
		}
		for i, ev := range events {
			v.judge(fmt.Sprintf("%s[%d]", name, i), &kgo.Record{Value: ev, Headers: structured}, false)
		}
	case "dump":
		for i, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			r, err := dumpRecord(line)
			if err != nil {
				return usageErr("validate: %s:%d: not a dump record: %v", name, i+1, err)
			}
			v.judge(fmt.Sprintf("%s:%d", name, i+1), r, true)
		}
	}
	return nil
}

// guessFormat: an array is a batch; several JSON values (JSON lines), or
// one object with a value or payload and no specversion, a dump; anything
// else one event (which may be invalid, even not JSON).
func guessFormat(data []byte) string {
	t := bytes.TrimSpace(data)
	if len(t) > 0 && t[0] == '[' {
		return "batch"
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	var first map[string]json.RawMessage
	if dec.Decode(&first) != nil {
		return "event"
	}
	if dec.More() {
		return "dump"
	}
	_, hasValue := first["value"]
	_, hasPayload := first["payload"]
	_, hasSpec := first["specversion"]
	if (hasValue || hasPayload) && !hasSpec {
		return "dump"
	}
	return "event"
}

// dumpRecord reads one line of a dump.
func dumpRecord(line []byte) (*kgo.Record, error) {
	var d struct {
		Key     *string         `json:"key"`
		Headers json.RawMessage `json:"headers"`
		Value   json.RawMessage `json:"value"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(line, &d); err != nil {
		return nil, err
	}
	r := &kgo.Record{}
	if d.Key != nil {
		r.Key = []byte(*d.Key)
	}
	val := d.Value
	if val == nil {
		val = d.Payload
	}
	var s string
	switch {
	case val == nil || string(val) == "null":
	case json.Unmarshal(val, &s) == nil:
		r.Value = []byte(s)
	default:
		r.Value = val // the event itself, written as JSON
	}
	var obj map[string]string
	var arr []string
	switch {
	case d.Headers == nil || string(d.Headers) == "null":
	case json.Unmarshal(d.Headers, &obj) == nil:
		for k, hv := range obj {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(hv)})
		}
	case json.Unmarshal(d.Headers, &arr) == nil && len(arr)%2 == 0:
		for i := 0; i < len(arr); i += 2 {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: arr[i], Value: []byte(arr[i+1])})
		}
	default:
		return nil, errors.New(`headers: want {"name": "value"} or ["name", "value", ...]`)
	}
	return r, nil
}

// judge prints the processor's verdict on r. keyed: r's key is the
// record's (a dump), so it is judged too.
func (v *validator) judge(name string, r *kgo.Record, keyed bool) {
	opts := v.opts
	opts.StrictKeys = opts.StrictKeys && keyed
	ev, reason, problems := processor.CheckRecord(r, opts)
	if ev == nil {
		v.invalid++
		fmt.Fprintf(v.out, "%s: invalid: %s\n", name, printable(firstLine(reason, problems)))
		if len(problems) > 1 || (len(problems) == 1 && problems[0] != reason) {
			for _, p := range problems {
				fmt.Fprintf(v.out, "  %s\n", printable(p))
			}
		}
		return
	}
	v.valid++
	if v.quiet {
		return
	}
	var notes []string
	switch ev.Type {
	case schemas.TypeRunStarted, schemas.TypeRunSucceeded, schemas.TypeRunFailed:
	default:
		notes = append(notes, fmt.Sprintf("type %q is not one the processor acts on: ignored", ev.Type))
	}
	if want := schemas.TenantKey(ev.TenantID, ev.Data.Run.ID); keyed && string(r.Key) != want {
		notes = append(notes, fmt.Sprintf("key %q is not %q: the processor counts it as miskeyed (a run's events may land on different partitions)", r.Key, want))
	}
	fmt.Fprintf(v.out, "%s: valid: %s %s/%s attempt %d\n", name, ev.Type, ev.TenantID, ev.Data.Run.ID, max(ev.Data.Run.Attempt, 1))
	for _, n := range notes {
		fmt.Fprintf(v.out, "  warning: %s\n", n)
	}
}

// firstLine is what follows "invalid:": the kind of problem when the
// problems are listed under it, else the reason.
func firstLine(reason string, problems []string) string {
	if len(problems) == 1 && problems[0] == reason {
		return reason
	}
	k, _, _ := strings.Cut(reason, ":")
	if len(problems) == 1 {
		return k + " (1 problem)"
	}
	return fmt.Sprintf("%s (%d problems)", k, len(problems))
}

// printable writes control characters (a NUL in a label key) as \xNN, so
// a problem prints on one line and can be read.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			fmt.Fprintf(&b, "\\x%02x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
