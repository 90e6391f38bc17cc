#!/usr/bin/env bash
# Installs the system packages artalk uses when they are missing: espeak-ng (offline TTS) and
# Mesa's EGL/OpenGL (offscreen rendering); with --test also Chromium (browser tests of the web app). Needs root (or sudo) and apt-get; otherwise it says
# what to install and carries on: commands that need them fail with a clear message.
set -u
need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need+=(libegl1)
ls /usr/lib/*/dri/swrast_dri.so /usr/lib/*/dri/libgallium*.so >/dev/null 2>&1 || need+=(libgl1-mesa-dri)
ldconfig -p 2>/dev/null | grep -q 'libgbm.so.1' || need+=(libgbm1)
# The test suite also drives the web app in a real browser.
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0
echo "artalk: installing system packages: ${need[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q "${need[@]}" >/dev/null; } || echo "artalk: could not install ${need[*]}" >&2
else
  echo "artalk: please install: ${need[*]}" >&2
fi
exit 0
