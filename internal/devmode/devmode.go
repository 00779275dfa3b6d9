package devmode

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/exospherehost/exo-alerts/internal/keyring"
)

// DemoTenant is the tenant of the demo API key.
const DemoTenant = "demo"

// Keyring returns the configured ring, or one kept in the user's config
// directory so a persistent DATABASE_URL keeps decrypting across restarts.
func Keyring(spec string, log *slog.Logger) (*keyring.Ring, error) {
	if spec != "" {
		return keyring.Parse(spec)
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = os.TempDir()
	}
	path := filepath.Join(dir, "exo-alerts", "dev-keyring")
	if b, err := os.ReadFile(path); err == nil { //nolint:gosec // G304: the path is built from the user config dir, not from input
		return keyring.Parse(string(b))
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("dev: read %s: %w", path, err)
	}
	spec = keyring.Generate("dev1")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err == nil {
		if err := os.WriteFile(path, []byte(spec), 0o600); err == nil {
			log.Info("generated a dev key ring (set EXO_KEYRING in production)", "path", path)
		}
	}
	return keyring.Parse(spec)
}

// Quickstart is what the printed quickstart needs: the API base URL, the
// demo API key, how to invoke the binary, the brokers and the topic prefix.
type Quickstart struct {
	Base, APIKey, Exe, Brokers, Prefix string
}

// PrintQuickstart prints the dev-mode banner and a quickstart script that
// works when pasted into bash.
func PrintQuickstart(w io.Writer, q Quickstart) {
	fmt.Fprintf(w, `
Exosphere Alerts is running (dev mode).

  API + dashboard   %[1]s/            (Settings → Alerts; paste the API key)
  OpenAPI           %[1]s/docs
  demo receiver     %[1]s/demo/receiver
  metrics           %[1]s/metrics
  Kafka             %[4]s

Quickstart — paste into another shell:

export EXO_API_KEY=%[2]s
export EXO_API=%[1]s
WEBHOOK_ID=$(curl -sS -X POST "$EXO_API/v1/webhooks" -H "Authorization: Bearer $EXO_API_KEY" -H 'Content-Type: application/json' -d '{"name":"demo receiver","target_url":"%[1]s/demo/receiver/hook"}' | grep -o '"id":"[^"]*"' | head -1 | cut -d'"' -f4); echo "webhook: $WEBHOOK_ID"
curl -sS -X POST "$EXO_API/v1/alert-rules" -H "Authorization: Bearer $EXO_API_KEY" -H 'Content-Type: application/json' -d '{"name":"ETL failures","event_type":"workflow.run.failed","endpoint_id":"'"$WEBHOOK_ID"'"}'; echo
%[3]s emit --brokers %[4]s --topic-prefix %[5]s --tenant demo --type workflow.run.failed --workflow nightly-etl --duration 84s --label env=prod
curl -sS "$EXO_API/demo/receiver.json"; echo

Then open %[1]s/demo/receiver to see the delivery and its verified signature.
`, q.Base, q.APIKey, q.Exe, q.Brokers, q.Prefix)
}
