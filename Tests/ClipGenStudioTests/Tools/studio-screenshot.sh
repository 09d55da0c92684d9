#!/usr/bin/env bash
# Takes the README's screenshot (docs/studio.png): clipgen-studio in `xterm -ti vt340` (sixel
# graphics) under Xvfb, after it generated an image for a prompt. Needs Xvfb, xterm, xdotool and
# ImageMagick's `import`; uses the release binary (make studio builds it).
#
#   Tests/ClipGenStudioTests/Tools/studio-screenshot.sh [OUT.png] [clipgen-studio flags…]
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
out=${1:-$root/docs/studio.png}
shift || true
bin=${CLIPGEN_STUDIO_BINARY:-$root/.build/release/clipgen-studio}
prompt=${STUDIO_PROMPT:-a large red circle on the left}
for tool in Xvfb xterm xdotool import; do
  command -v "$tool" >/dev/null || { echo "studio-screenshot: $tool is not installed" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "studio-screenshot: $bin is not built (make studio builds it)" >&2; exit 1; }

display=:${STUDIO_DISPLAY:-97}
data=$(mktemp -d)
Xvfb "$display" -screen 0 1300x760x24 >/dev/null 2>&1 &
xvfb=$!
xterm_pid=
cleanup() {
  [ -n "$xterm_pid" ] && kill "$xterm_pid" 2>/dev/null || true
  kill "$xvfb" 2>/dev/null || true
  rm -rf "$data"
}
trap cleanup EXIT
sleep 1
export DISPLAY=$display
xterm -ti vt340 -tn xterm-256color -xrm 'XTerm*numColorRegisters: 256' -xrm 'XTerm*sixelScrolling: true' \
  -fa 'DejaVu Sans Mono' -fs 11 -geometry 128x36+0+0 \
  -e "$bin" --data-dir "$data" "$@" &
xterm_pid=$!
sleep 4
xdotool mousemove 400 300
xdotool type --delay 25 "$prompt"
xdotool key Return
# Wait for the history row to be done (the database is the studio's own record of it).
for _ in $(seq 1 600); do
  if sqlite3 "$data/history.sqlite" "SELECT status FROM generation" 2>/dev/null | grep -q done; then break; fi
  sleep 0.2
done
sleep 1.5
mkdir -p "$(dirname "$out")"
import -window root -crop 1156x690+0+0 +repage "$out"
echo "wrote $out"
xdotool key ctrl+c
sleep 1
