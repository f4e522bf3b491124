#!/usr/bin/env bash
# Screenshots of the real window: Xvfb + openbox, driven with xdotool, grabbed with ImageMagick's
# `import` (Debian: apt-get install xvfb openbox xdotool imagemagick, plus README's Qt packages).
# Usage: scripts/xvfb_screens.sh OUTDIR     (about two minutes; each shot in its own X server)
# Each run starts with fresh settings (a temporary XDG_CONFIG_HOME), so the window opens
# maximised, as on a first start.
set -euo pipefail
out=${1:?usage: $0 OUTDIR}
mkdir -p "$out"
root=$(cd "$(dirname "$0")/.." && pwd)
rnnviz="$root/.venv/bin/rnnviz"
display=97

# shot NAME WxH TRAIN_SECONDS [env VAR=value ...] -- [rnnviz args ...]
# KEYS="..." before it: keys xdotool presses after the training, before the grab
# ONLY=PATTERN in the environment: only the shots whose name matches (a grep -E pattern)
shot() {
    local name=$1 size=$2 seconds=$3
    if [ -n "${ONLY:-}" ] && ! grep -qE "$ONLY" <<<"$name"; then return 0; fi
    shift 3
    local envs=()
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
    [ "${1:-}" = "--" ] && shift
    display=$((display + 1))
    local home
    home=$(mktemp -d)
    Xvfb ":$display" -screen 0 "${size}x24" -nolisten tcp >/dev/null 2>&1 &
    local xvfb=$!
    sleep 1
    DISPLAY=":$display" openbox >/dev/null 2>&1 &
    local wm=$!
    sleep 1
    env DISPLAY=":$display" XDG_CONFIG_HOME="$home" QT_QPA_PLATFORM=xcb "${envs[@]}" \
        "$rnnviz" "$@" >"$out/$name.log" 2>&1 &
    local app=$!
    DISPLAY=":$display" xdotool search --sync --onlyvisible --name "rnnviz" >/dev/null
    sleep 8  # torch imported, the engine up, the first probe shown
    if [ "${seconds%!}" != 0 ]; then
        DISPLAY=":$display" xdotool key space  # Play (Space works wherever focus is)
        sleep "${seconds%!}"
        # Pause; "N!": no pause, the run stops itself (a divergence)
        [ "${seconds%!}" = "$seconds" ] && DISPLAY=":$display" xdotool key space
        sleep 2
    fi
    if [ -n "${KEYS:-}" ]; then
        # shellcheck disable=SC2086  # one key name per word
        DISPLAY=":$display" xdotool key --delay 300 $KEYS
        sleep 2
    fi
    DISPLAY=":$display" import -window root "$out/$name.png"
    kill "$app" 2>/dev/null || true
    wait "$app" 2>/dev/null || true
    kill "$wm" "$xvfb" 2>/dev/null || true
    rm -rf "$home"
    echo "$out/$name.png"
}

shot projector-1280x720 1280x720 6 --
shot scale2-1920x1080 1920x1080 6 QT_SCALE_FACTOR=2 --
shot dark-1920x1080 1920x1080 6 QT_QPA_PLATFORMTHEME=gtk3 GTK_THEME=Adwaita:dark --
shot delay-task-1280x720 1280x720 8 -- --set corpus.source=synthetic:delay
shot diverged-1280x720 1280x720 '6!' -- --set model.activation=relu --set train.lr=50 \
    --set train.clip_enabled=false
# the unrolled network full size (its number key) on the slide's word, the MLP beside it
KEYS="alt+1" shot unrolled-1280x720 1280x720 6 -- --probe machine --mlp --cursor 3
KEYS="alt+1" shot unrolled-dark-1920x1080 1920x1080 6 -- --probe machine --scheme dark --cursor 3
# lecture mode (F11) on a projector, light and dark, and at 1920x1080 one zoom step up
KEYS="F11" shot lecture-1280x720 1280x720 6 -- --probe machine --scheme light --cursor 3
KEYS="F11" shot lecture-dark-1280x720 1280x720 6 -- --probe machine --scheme dark --cursor 3
KEYS="F11 4" shot lecture-softmax-1920x1080 1920x1080 6 -- --probe machine --cursor 3
# View > Colours > Dark chosen in the open light window: it recolours live
KEYS="alt+v c Down Down Return" shot switch-dark-1280x720 1280x720 6 -- --probe machine --scheme light --cursor 3
# a lesson's step in lecture mode: the lesson bar and one view (the MLP row: five rows to fit)
KEYS="F11" shot lesson3-lecture-dark-1280x720 1280x720 0 -- --lesson chapter:3 --scheme dark
# the timeline: a session trained headless for 2,000 steps, opened at an early and at the
# last step, with the learning film; and the generation panel on the same session
session="$out/film-2000.rnnviz"
if [ -n "${ONLY:-}" ] && ! grep -qE "$ONLY" <<<"timeline-early timeline-late film generation"; then
    :
elif [ ! -f "$session" ]; then
    "$rnnviz" train --max-steps 2000 --quiet --session-out "$session" >"$out/film-2000.log" 2>&1
fi
shot timeline-early-1280x720 1280x720 0 -- --session "$session" --at-step 60 --show film
shot timeline-late-1280x720 1280x720 0 -- --session "$session" --show film
shot timeline-early-dark-1920x1080 1920x1080 0 -- --session "$session" --at-step 60 \
    --show film --scheme dark
shot generation-1280x720 1280x720 0 -- --session "$session" --show generation
shot generation-dark-1920x1080 1920x1080 0 -- --session "$session" --show generation \
    --at-step 150 --scheme dark
