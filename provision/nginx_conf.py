"""Renders provision/nginx.conf.template into an nginx.conf for the project's own nginx.

    python3 provision/nginx_conf.py --listen 127.0.0.1:5000 \
        --upstream unix:/path/to/var/run/gunicorn.sock --prefix /path/to/var/nginx

writes PREFIX/nginx.conf (or --out), makes PREFIX/logs and PREFIX/tmp, and prints the
path of the file. provision/run.sh (`make run`) and the tests (harness/servers.py,
NginxServer) both render through this script, so both run the same configuration.
Only the standard library: it runs with the system's python3 as well as .venv's.

Run nginx on the result with `nginx -p PREFIX -c PREFIX/nginx.conf` (it stays in the
foreground: the template says `daemon off`).
"""
import argparse
import grp
import os
import pwd
import re
import resource
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx.conf.template"

WORKER_CONNECTIONS = 8192
"""Per nginx worker (two workers on two cores: 16384 connections)."""
FILES_BESIDES_CONNECTIONS = 256
"""Open files a worker needs besides its connections (logs, listeners, room)."""
MIN_WORKER_CONNECTIONS = 512
PER_CLIENT = 1024
"""Requests in progress per client address (limit_conn): see the template."""
UNIX_PATH_MAX = 107
"""sun_path holds 108 bytes, the last one a NUL."""

_UNSAFE = re.compile(r'["\\$;{}#\s\x00-\x1f\x7f]')
"""Characters that could end or change an nginx directive (in a HOST:PORT)."""
_UNSAFE_QUOTED = re.compile(r'["\\$;{}#\x00-\x1f\x7f]')
"""The same inside double quotes, where paths go: spaces are fine there."""


class RenderError(ValueError):
    pass


def _quote(value, what):
    if _UNSAFE_QUOTED.search(value):
        raise RenderError(f"{what} {value!r}: contains a character nginx.conf cannot hold")
    return f'"{value}"'


def _address(value, what):
    """`host:port`, `[v6]:port` or `unix:/absolute/path`, checked and quoted for nginx."""
    if value.startswith("unix:"):
        path = value[len("unix:"):]
        if not path.startswith("/"):
            raise RenderError(f"{what} {value!r}: a unix socket path must be absolute")
        if len(os.fsencode(path)) > UNIX_PATH_MAX:
            raise RenderError(f"{what} {value!r}: a unix socket path has at most "
                              f"{UNIX_PATH_MAX} bytes")
        return _quote(value, what)
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RenderError(f"{what} {value!r}: must be HOST:PORT or unix:/PATH")
    if _UNSAFE.search(value):
        raise RenderError(f"{what} {value!r}: contains a character nginx.conf cannot hold")
    return value


def _user_line():
    # A master started as root switches its workers to `user` (by default nobody, who
    # could not reach a socket or a directory under root's 0700 dirs); they run as the
    # user who started everything else, as gunicorn does. Not root: the directive would
    # only be ignored with a warning, so it is left out.
    if os.geteuid() != 0:
        return "# (not started as root: the workers run as the user who starts nginx)"
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};"


def _connection_limits(worker_connections):
    """(worker_connections, worker_rlimit_nofile) this user can actually have.

    root may raise its limit; anyone else only up to the hard limit, so the number of
    connections is lowered to fit instead of nginx failing to raise it at start."""
    want = worker_connections + FILES_BESIDES_CONNECTIONS
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if os.geteuid() == 0 or hard == resource.RLIM_INFINITY or hard >= want:
        return worker_connections, want
    fitted = max(MIN_WORKER_CONNECTIONS, hard - FILES_BESIDES_CONNECTIONS)
    print(f"nginx_conf: open files limited to {hard} (ulimit -Hn): worker_connections "
          f"{fitted} instead of {worker_connections}", file=sys.stderr)
    return fitted, hard


def render(listen, upstream, prefix, per_client=PER_CLIENT,
           worker_connections=WORKER_CONNECTIONS, template=TEMPLATE):
    """The text of nginx.conf (nothing is written)."""
    prefix = Path(prefix)
    if not prefix.is_absolute():
        raise RenderError(f"prefix {str(prefix)!r}: must be an absolute path")
    if per_client < 1:
        raise RenderError("per-client limit must be at least 1")
    connections, nofile = _connection_limits(worker_connections)
    values = {
        "USER": _user_line(),
        "PREFIX": str(prefix),
        "LISTEN": _address(listen, "listen address"),
        "UPSTREAM": _address(upstream, "upstream address"),
        "WORKER_CONNECTIONS": str(connections),
        "RLIMIT_NOFILE": str(nofile),
        "PER_CLIENT": str(per_client),
    }
    _quote(str(prefix), "prefix")
    text = Path(template).read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise RenderError(f"{template}: no value for {', '.join(left)}")
    return text


def write(listen, upstream, prefix, out=None, **options):
    """Renders into `out` (default PREFIX/nginx.conf) and makes PREFIX/logs and PREFIX/tmp."""
    prefix = Path(prefix).resolve()
    text = render(listen, upstream, prefix, **options)
    for directory in (prefix, prefix / "logs", prefix / "tmp"):
        directory.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out else prefix / "nginx.conf"
    # Written aside and renamed: a reader never sees half a file.
    partial = out.with_name(out.name + ".partial")
    partial.write_text(text)
    partial.replace(out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True,
                        help="where clients connect: HOST:PORT or unix:/PATH (OG_BIND)")
    parser.add_argument("--upstream", required=True,
                        help="where gunicorn listens: unix:/PATH or HOST:PORT")
    parser.add_argument("--prefix", required=True,
                        help="nginx's directory: pid file, logs/, tmp/ (absolute, or made so)")
    parser.add_argument("--out", help="the file to write (default PREFIX/nginx.conf)")
    parser.add_argument("--per-client", type=int, default=PER_CLIENT,
                        help=f"requests in progress per client address (default {PER_CLIENT})")
    parser.add_argument("--worker-connections", type=int, default=WORKER_CONNECTIONS,
                        help=f"connections per nginx worker (default {WORKER_CONNECTIONS})")
    args = parser.parse_args(argv)
    try:
        out = write(args.listen, args.upstream, args.prefix, args.out,
                    per_client=args.per_client, worker_connections=args.worker_connections)
    except RenderError as error:
        print(f"nginx_conf: {error}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
