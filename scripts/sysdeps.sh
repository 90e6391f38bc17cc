#!/usr/bin/env bash
# Installs the system packages artalk uses when they are missing: espeak-ng (offline TTS) and
# Mesa's EGL/OpenGL (offscreen rendering, llvmpipe on a CPU); with --test also Chromium (browser
# tests of the web app) and Blender with the numpy its glTF importer needs (the glTF import test;
# Debian's blender package does not depend on python3-numpy). Needs apt-get and root (or passwordless sudo); otherwise it names what to
# install and carries on: the commands that need a missing package fail with a clear message.
set -u
want=(espeak-ng libegl1 libegl-mesa0 libgl1-mesa-dri libgbm1)
[ "${1:-}" = "--test" ] && want+=(chromium blender python3-numpy)

need=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
else
  command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
  ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || need+=(libegl1 libegl-mesa0)
  if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
    command -v blender >/dev/null 2>&1 || need+=(blender python3-numpy)
  fi
fi
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null && SUDO="sudo -n"
if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
  echo "artalk: installing system packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; } \
    || echo "artalk: could not install ${need[*]}" >&2
else
  echo "artalk: please install these system packages: ${need[*]}" >&2
fi
exit 0
