#!/usr/bin/env bash
# Set-up for the tests, run by `npm test` (scripts/test.mjs). The integration
# tests need a real VS Code (code-server, installed into .tools/ from npm), a
# browser to drive it (Chromium) and, for code-server's install, ripgrep and
# the Kerberos headers; the queue tests need a Redis server. On Debian/Ubuntu
# as root this installs what is missing; elsewhere it prints one line per
# missing piece with how to get it on stderr. On stdout it says what is there
# (KEY=value), so that the caller runs every test it can and names the rest.
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
chromium_bin() {
  if [ -n "${CHROMIUM_PATH:-}" ] && [ -x "${CHROMIUM_PATH}" ]; then echo "$CHROMIUM_PATH"; return 0; fi
  for b in chromium chromium-browser google-chrome; do have_cmd "$b" && { command -v "$b"; return 0; }; done
  return 1
}
code_server_ok() { [ -x .tools/code-server/node_modules/.bin/code-server ]; }

need_pkgs=()
chromium_bin >/dev/null || need_pkgs+=(chromium)
have_cmd redis-server || need_pkgs+=(redis-server)
if ! code_server_ok; then
  have_cmd rg || need_pkgs+=(ripgrep)
  # libkrb5-dev: code-server's kerberos module builds from source against it (node-gyp: a compiler, make, python3).
  { have_cmd krb5-config || [ -f /usr/include/gssapi/gssapi.h ]; } || need_pkgs+=(libkrb5-dev)
  { have_cmd g++ && have_cmd make; } || need_pkgs+=(build-essential)
  have_cmd python3 || need_pkgs+=(python3)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if have_cmd apt-get && [ "$(id -u)" = 0 ]; then
    echo "test set-up: installing ${need_pkgs[*]} (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" ca-certificates >/dev/null; } \
      || echo "test set-up: apt-get install ${need_pkgs[*]} failed" >&2
  fi
fi

have_cmd redis-server || missing+=("redis-server, for the queue tests (sudo apt-get install redis-server)")
chromium_bin >/dev/null || missing+=("Chromium (Debian/Ubuntu: sudo apt-get install chromium; or set CHROMIUM_PATH=/path/to/chrome)")
if ! code_server_ok; then
  if have_cmd rg && { have_cmd krb5-config || [ -f /usr/include/gssapi/gssapi.h ]; }; then
    bash scripts/install-code-server.sh || missing+=("code-server (scripts/install-code-server.sh failed; see .tools/code-server/install.log)")
  else
    have_cmd rg || missing+=("ripgrep, for code-server's install (sudo apt-get install ripgrep)")
    { have_cmd krb5-config || [ -f /usr/include/gssapi/gssapi.h ]; } || missing+=("Kerberos headers, for code-server's install (sudo apt-get install libkrb5-dev)")
  fi
fi

for m in "${missing[@]}"; do echo "test set-up: missing $m" >&2; done
# What is available, for scripts/test.mjs (KEY=value on stdout).
echo "chromium=$(chromium_bin || true)"
echo "redis=$(command -v redis-server || true)"
echo "codeServer=$(code_server_ok && echo .tools/code-server/node_modules/.bin/code-server || true)"
