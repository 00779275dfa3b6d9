// Package receivers runs the example webhook receivers of
// integration-tests/ — Go (../receiver, the signature package), Python
// (../receiver-python, standardwebhooks from PyPI) and Node
// (../receiver-node, standardwebhooks from npm) — against the whole running
// system, and against deliveries forged to be tampered, stale or replayed.
// Its test installs what each example needs (a virtualenv and node_modules in
// the user's cache directory, keyed by the hash of the pinned requirements),
// so a fresh machine needs no manual step. It has no non-test code.
package receivers
