#!/usr/bin/env bash
# Install ryot's build and test dependencies from Debian 12's packages.
# Runs as root (CI) or through sudo.  Safe to run again.
set -euo pipefail
pkgs=(build-essential pkg-config clang libclang-rt-dev
      libpcre2-dev libjansson-dev libmicrohttpd-dev libsodium-dev libzstd-dev libhiredis-dev liblmdb-dev redis-server libcurl4-openssl-dev libcmocka-dev libsimde-dev gnuplot-nox
      python3 python3-pip python3-venv unzip ca-certificates
      chromium)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
