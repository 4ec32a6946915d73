#!/usr/bin/env bash
# Installs code-server (a real VS Code: server + web workbench) into .tools/,
# for the integration tests. Not a devDependency: its post-install needs an
# exact Node major. Needs Debian's libkrb5-dev and ripgrep (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=4.100.3
DEST=.tools/code-server
if [ -x "$DEST/node_modules/.bin/code-server" ] && grep -q "\"version\": \"$VERSION\"" "$DEST/node_modules/code-server/package.json" 2>/dev/null; then
  exit 0
fi
command -v rg >/dev/null || { echo "install-code-server: needs ripgrep (apt-get install ripgrep)" >&2; exit 1; }
# @vscode/ripgrep downloads rg from GitHub; seed its cache with Debian's rg instead.
export TMPDIR=${TMPDIR:-/tmp}
for v in 1.15.11 1.15.9 1.15.10 1.15.14; do
  cache="$TMPDIR/vscode-ripgrep-cache-$v"
  mkdir -p "$cache"
  for t in ripgrep-v13.0.0-10-x86_64-unknown-linux-musl ripgrep-v13.0.0-13-x86_64-unknown-linux-musl; do
    [ -f "$cache/$t.tar.gz" ] || tar -czf "$cache/$t.tar.gz" -C /usr/bin rg
  done
done
mkdir -p "$DEST"
[ -f "$DEST/package.json" ] || echo '{"private":true}' > "$DEST/package.json"
npm_config_yes=true npm install --prefix "$DEST" --no-audit --no-fund --unsafe-perm "code-server@$VERSION" >"$DEST/install.log" 2>&1 || { tail -40 "$DEST/install.log" >&2; exit 1; }
echo "install-code-server: code-server $VERSION in $DEST"
