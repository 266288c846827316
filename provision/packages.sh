#!/usr/bin/env bash
# Installs the Debian 12 packages the project runs on. Safe to run again: when they are
# all installed it only asks dpkg, so `make test` stays fast on a prepared host.
set -euo pipefail

PACKAGES=(redis-server mariadb-server mariadb-client python3 python3-venv python3-dev
          build-essential wrk curl)

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

# dpkg-query exits 1 when a package is unknown to it; the ones it knows are still listed.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null \
            | awk '$2 == "installed" { print $1 }' || true)

missing=()
for package in "${PACKAGES[@]}"; do
    grep -qx "$package" <<<"$installed" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "packages: all installed"
    exit 0
fi

echo "packages: installing ${missing[*]}"
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
echo "packages: installed ${missing[*]}"
