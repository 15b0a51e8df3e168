#!/bin/sh
# Install Debian's headless Chromium for the report's browser test when it is absent.
# Best effort: without root or a package registry the browser test skips and says why.
command -v chromium >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing chromium for the browser test (apt-get)..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
    >/tmp/sparsetopo-chromium-install.log 2>&1 \
    || echo "warning: chromium install failed (see /tmp/sparsetopo-chromium-install.log)"
fi
exit 0
