package testenv

import (
	"testing"
	"time"
)

// The probe must answer fast, and never panic, with or without an engine.
func TestDockerAvailableIsQuick(t *testing.T) {
	start := time.Now()
	ok := dockerAvailable()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("dockerAvailable took %v", d)
	}
	t.Logf("Docker engine reachable: %v", ok)
}

func TestDockerDisabledByEnv(t *testing.T) {
	t.Setenv("TESTCONTAINERS_DISABLED", "true")
	if pingDocker() {
		t.Fatal("pingDocker() = true with TESTCONTAINERS_DISABLED=true")
	}
}
