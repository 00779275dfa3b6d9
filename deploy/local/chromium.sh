#!/usr/bin/env bash
# Print the path of a usable Chromium for the dashboard's browser tests
# (design §8: Debian's `chromium` package, driven with chromedp).
#
#   chromium.sh        print the path; install Debian's chromium first if
#                      it is missing and we run as root (apt-get)
#
# It honours EXO_CHROMIUM / CHROME_PATH when they name an executable. It
# exits non-zero, saying why on stderr, when no browser can be had.
set -euo pipefail

PROG="$(basename -- "${BASH_SOURCE[0]}")"
log() { printf '%s: %s\n' "$PROG" "$*" >&2; }

# usable PATH: the browser starts and reports its version.
usable() {
	[[ -n "$1" && -x "$1" ]] && "$1" --headless --no-sandbox --version >/dev/null 2>&1
}

find_browser() {
	local c
	for c in "${EXO_CHROMIUM:-}" "${CHROME_PATH:-}"; do
		if [[ -n "$c" ]]; then
			if usable "$c"; then
				printf '%s\n' "$c"
				return 0
			fi
			log "warning: $c (from EXO_CHROMIUM/CHROME_PATH) does not start; looking elsewhere"
		fi
	done
	for c in chromium chromium-browser; do
		if c="$(command -v "$c")" && usable "$c"; then
			printf '%s\n' "$c"
			return 0
		fi
	done
	if usable /usr/bin/chromium; then
		printf '%s\n' /usr/bin/chromium
		return 0
	fi
	return 1
}

main() {
	[[ $# -eq 0 ]] || { printf 'usage: %s\n' "$PROG" >&2; exit 2; }
	if find_browser; then
		return 0
	fi
	if [[ "$(id -u)" -ne 0 ]]; then
		log "error: no usable chromium, and not root to install it: run 'sudo apt-get install -y --no-install-recommends chromium' or set EXO_CHROMIUM"
		return 1
	fi
	if ! command -v apt-get >/dev/null; then
		log "error: no usable chromium and no apt-get to install Debian's chromium package; set EXO_CHROMIUM to a Chromium binary"
		return 1
	fi
	local t0=$SECONDS
	log "installing Debian's chromium package (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	# Container images often ship without package lists: refresh them once.
	if ! apt-get update >&2 || ! apt-get install -y --no-install-recommends chromium >&2; then
		log "error: apt-get could not install Debian's chromium package (see above)"
		return 1
	fi
	if find_browser; then
		log "chromium installed ($((SECONDS - t0))s)"
		return 0
	fi
	log "error: installed the chromium package but it does not start"
	return 1
}

main "$@"
