#!/usr/bin/env bash
# Install Debian's Chromium, ChromeDriver and a small CJK font (the dashboard's 中文 labels)
# for the browser tests, if missing.
# Needs root (or sudo) and the Debian package registry; skips quietly when both are there.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null \
   && [ -n "$(fc-list :lang=zh 2>/dev/null)" ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "setup: chromium missing and not root: the browser tests will be skipped" >&2; exit 0
  fi
fi
echo "setup: installing chromium, chromium-driver and fonts-wqy-microhei from Debian (browser tests)" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei >/dev/null
