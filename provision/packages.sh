#!/usr/bin/env bash
# Installs the Debian 12 packages the project runs on. Safe to run again: when they are
# all installed it only asks dpkg, so `make test` stays fast on a prepared host.
set -euo pipefail

# nginx: the reverse proxy `make run` puts in front of gunicorn (provision/run.sh runs
# the project's own instance; the distribution's service is not used).
# chromium, chromium-driver: the headless browser the page's tests drive (tests/browser),
# Debian's own builds, so Selenium never downloads one.
PACKAGES=(redis-server mariadb-server mariadb-client python3 python3-venv python3-dev
          build-essential wrk curl nginx chromium chromium-driver)

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

# Debian's nginx package starts (and enables) its own service with the default site on
# port 80 of every address. The project runs its own nginx (provision/run.sh), so a
# service that this script has just installed is stopped and disabled again; an nginx
# that was on the host before is left as it was.
if [[ " ${missing[*]} " == *" nginx "* ]]; then
    if [ -d /run/systemd/system ]; then
        "${SUDO[@]}" systemctl disable --now --quiet nginx 2>/dev/null || true
    elif [ -x /etc/init.d/nginx ]; then
        "${SUDO[@]}" /etc/init.d/nginx stop >/dev/null 2>&1 || true
        "${SUDO[@]}" update-rc.d nginx disable >/dev/null 2>&1 || true
    fi
    echo "packages: the distribution's nginx service is stopped and disabled (the project runs its own)"
fi
