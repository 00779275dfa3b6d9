package testenv

import "errors"

// dockerAvailable reports whether a Docker engine is reachable.
func dockerAvailable() bool { return false }

func containerPostgres() (string, error) {
	return "", errors.New("testenv: containers not wired yet")
}

func containerKafka() ([]string, error) {
	return nil, errors.New("testenv: containers not wired yet")
}
