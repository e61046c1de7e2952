"""``target-profile-mock serve``: the standalone server, with embedded defaults."""

from __future__ import annotations

import argparse
import contextlib
import errno
import math
import os
import re
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from .app import create_app
from .backend import ControlError, MockBackend
from .config import MockConfig
from .front import add_tls_arguments
from .lifecycle import Lifecycle, LifecycleError
from .server import CHANNEL_TIMEOUT, CONNECTION_LIMIT
from .store import shown_url

LOOPBACK = ("127.0.0.1", "localhost", "::1")
_CLIENT_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # usable both in /m2/<code>/ and <code>.tt.omtrdc.net
_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>[0-9]{1,5}))?")


class _Parser(argparse.ArgumentParser):
    """argparse that answers a bad command line with one line on stderr and exit status 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _whole(minimum: int, *, off: str | None = None) -> Callable[[str], int | None]:
    """An argparse type: a whole number >= minimum (or the word ``off``, read as None, when allowed)."""
    def parse(text: str) -> int | None:
        if off is not None and text.strip().lower() == "off":
            return None
        try:
            n = int(text)
        except ValueError:
            n = None
        if n is None or n < minimum:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a whole number >= {minimum}" + (f" or 'off' ({off})" if off else ""))
        return n
    return parse


def _number(text: str) -> float:
    """``text`` as a float, NaN when it is none (so one finiteness check refuses both)."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def _seconds(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _timeout_seconds(text: str) -> float:
    value = _number(text)
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return value


def _days(text: str) -> float | None:
    if text.strip().lower() == "off":
        return None
    value = _number(text)
    if not math.isfinite(value) or not 0 < value <= 36_500:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of days from 0 to 36500 (exclusive of 0), "
                                         "or 'off'")
    return value


def _location_hint(text: str) -> str:
    if re.fullmatch(r"[0-9]{1,3}_[0-9]{1,3}", text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a location hint such as 28_0 (<cluster>_<node>)")
    return text


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: ports are 0-65535 (0 picks a free one)")
    return port


def _client_code(text: str) -> str:
    if not _CLIENT_CODE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a client code: letters, digits, '_' and '-', "
                                         "starting with a letter or digit (as in <code>.tt.omtrdc.net)")
    return text


def _status_host(text: str) -> str:
    m = _HOST_PORT.fullmatch(text)
    if not m or (m.group("port") is not None and not 0 < int(m.group("port")) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST or HOST:PORT (no scheme, no path), "
                                         "e.g. mboxedge45.tt.omtrdc.net or 127.0.0.1:8080")
    return text


def _lifecycle(text: str) -> str:
    try:
        Lifecycle.parse(text)
    except LifecycleError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _token(text: str) -> str:
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise argparse.ArgumentTypeError("the token must be non-empty printable text without spaces "
                                         "(it is sent as an X-Mock-Token header)")
    return text


def _host(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("give an interface name or address, e.g. 127.0.0.1 or 0.0.0.0")
    return text


def _size(text: str) -> int | None:
    """A byte count: a whole number, or one followed by K, M or G (KiB, MiB, GiB); ``off`` is no bound."""
    if text.strip().lower() == "off":
        return None
    units = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (t[:-1], t[-1]) if t[-1:] in units else (t, "")
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count; give e.g. 67108864, 64M or 1G, "
                                         "or 'off' (no bound)")
    return int(number) * units[unit]


_STORE_SCHEMES = ("memory", "redis", "rediss", "unix")


def parse_store_url(text: str) -> str | None:
    """A store URL checked: ``memory://`` (read as None, the default) or a Redis URL with a host (or a
    socket path); ValueError saying what is wrong and what would do."""
    from urllib.parse import urlsplit

    hint = ("use memory:// (one process) or redis://HOST:PORT/DB (also rediss://HOST:PORT/DB and "
            "unix:///path/to/redis.sock)")
    url = urlsplit(text.strip())
    scheme = url.scheme.lower()
    if scheme not in _STORE_SCHEMES:
        raise ValueError(f"{text!r} is not a store URL: {hint}")
    try:
        port = url.port
    except ValueError:
        raise ValueError(f"{text!r}: the port is not a port (1-65535)") from None
    if scheme == "memory":
        if url.netloc or url.path or url.query:
            raise ValueError(f"{text!r}: the in-memory store takes no address; write memory://")
        return None
    if scheme == "unix":
        if not url.path:
            raise ValueError(f"{text!r} names no socket file: write unix:///path/to/redis.sock")
        return text.strip()
    db = url.path.strip("/")
    if not url.hostname or port == 0 or (db and not db.isdigit()):
        raise ValueError(f"{text!r} is not a Redis URL: write redis://HOST:PORT/DB, e.g. "
                         "redis://localhost:6379/0 (DB is a number)")
    return text.strip()


def _store_url(text: str) -> str | None:
    try:
        return parse_store_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _store_prefix(text: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.:-]+", text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a key prefix: letters, digits and _ . : - only, "
                                         "e.g. tpm or team-a")
    return text


def _setting(text: str) -> tuple[str, object]:
    import json

    name, sep, raw = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE, e.g. lifecycle=polls=1")
    try:
        value: object = json.loads(raw)
    except ValueError:
        value = raw
    return name.strip(), value


def _parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = _Parser(prog="target-profile-mock", description="A stateful fake of Adobe Target's Profile APIs.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the standalone mock server")
    s.add_argument("--host", type=_host, default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=_port, default=8080, help="port (default: 8080; 0 picks a free port)")
    s.add_argument("--client-code", type=_client_code, default="demo",
                   help="tenant for /m2/client/... paths when the Host header names none (default: demo)")
    s.add_argument("--auth", action="store_true", help="require Authorization: Bearer <token> on profile APIs")
    s.add_argument("--batch-delay", type=_seconds, default=2.0, metavar="SECONDS",
                   help="batches complete this long after submission (default: 2)")
    s.add_argument("--lifecycle", type=_lifecycle, metavar="SPEC",
                   help="batch lifecycle spec, e.g. 'polls=2', 'seconds=5,stuck', 'immediate,failed=10%%' "
                        "(overrides --batch-delay)")
    s.add_argument("--update-delay", type=_seconds, default=0.0, metavar="SECONDS",
                   help="single updates become visible after this long (default: 0)")
    s.add_argument("--bulk-rate-limit", type=_whole(0, off="no limit"), default=50, metavar="N",
                   help="bulk calls per minute per tenant before HTTP 503 (default: 50; 0 refuses every bulk "
                        "call; 'off' switches the limit off)")
    s.add_argument("--status-host", type=_status_host, metavar="HOST[:PORT]",
                   help="host written into batchStatus URLs (default: the host the client used)")
    s.add_argument("--seed", type=int, default=None,
                   help="seed for ids, tokens and scripted outcomes (default: 0; beyond loopback, without --seed, "
                        "tokens are drawn at random)")
    s.add_argument("--journal-size", type=_whole(0), default=10_000, metavar="N",
                   help="requests kept in the journal (default: 10000)")
    s.add_argument("--journal-bytes", type=_size, default=64 * 1024 * 1024, metavar="BYTES",
                   help="bytes the journal keeps before dropping its oldest requests; takes a number or "
                        "K, M, G (binary units), e.g. 256M, or 'off' (default: 64M)")
    s.add_argument("--batch-retention-bytes", type=_size, default=128 * 1024 * 1024, metavar="BYTES",
                   help="estimated bytes of batch data held across all tenants; beyond it ended batches' rows are "
                        "dropped, oldest first, then new batches refused with 503 (K, M, G, or 'off'; "
                        "default: 128M)")
    s.add_argument("--max-tenants", type=_whole(1, off="no bound"), default=10_000, metavar="N",
                   help="client codes held at once; a write naming a new one beyond it gets 503 (default: 10000; "
                        "'off' for no bound)")
    s.add_argument("--profile-lifetime", type=_days, default=14.0, metavar="DAYS",
                   help="days a profile lives without activity (default: 14, Adobe's; up to 90 on request; "
                        "'off' keeps profiles for ever)")
    s.add_argument("--login-sync-delay", type=_seconds, default=0.0, metavar="SECONDS",
                   help="seconds before a login connects a thirdPartyId to the visitor (default: 0; Adobe "
                        "documents 5-10 minutes)")
    s.add_argument("--location-hint", type=_location_hint, default="28_0", metavar="CLUSTER_NODE",
                   help="the location hint of tntIds the Delivery API issues (default: 28_0)")
    s.add_argument("--control-token", type=_token, metavar="TOKEN",
                   help="require X-Mock-Token: TOKEN on the /_mock/ control API")
    s.add_argument("--threads", type=_whole(1), default=8, help="worker threads (default: 8)")
    s.add_argument("--connection-limit", type=_whole(1), default=CONNECTION_LIMIT, metavar="N",
                   help=f"open connections kept at once, idle or busy (default: {CONNECTION_LIMIT})")
    s.add_argument("--channel-timeout", type=_timeout_seconds, default=CHANNEL_TIMEOUT, metavar="SECONDS",
                   help=f"close a connection silent this long between requests (default: {CHANNEL_TIMEOUT:g})")
    s.add_argument("--fault-profile", metavar="FILE",
                   help="queue the faults in this JSON file at start (the body POST /_mock/faults takes)")
    s.add_argument("--state-file", metavar="PATH",
                   help="keep the state across restarts: load it from PATH at start (if the file exists) and "
                        "write it there on shutdown and on POST /_mock/snapshot")
    s.add_argument("--workers", type=_whole(1), default=1, metavar="N",
                   help="processes answering on the port (default: 1); more than one needs a shared store "
                        "(--store redis://...) and fork() (POSIX)")
    s.add_argument("--store", type=_store_url, default=None, metavar="URL",
                   help="where the state lives: memory:// (default: in this process) or redis://HOST:PORT/DB "
                        "(also rediss:// and unix:///path/redis.sock), shared by every server on it")
    s.add_argument("--store-prefix", type=_store_prefix, default="tpm", metavar="PREFIX",
                   help="prefix of this fake's keys in a shared store, so several fakes share one Redis "
                        "(default: tpm)")
    add_tls_arguments(s)
    v = sub.add_parser("verify", help="replay recorded exchanges (cassettes) against a fresh fake and report "
                                      "where its answers differ (exit 1)")
    v.add_argument("cassettes", nargs="+", metavar="CASSETTE",
                   help="cassette files, or directories of them (*.json); see docs/cassettes.md")
    v.add_argument("--setting", action="append", default=[], metavar="NAME=VALUE", type=_setting,
                   help="a setting of the fake for every cassette, over the cassette's own (VALUE is read as "
                        "JSON when it parses, else as text), e.g. lifecycle=polls=1 or auth=true; repeatable")
    return p


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """The server's settings from parsed (so already checked) options."""
    lifecycle = Lifecycle.parse(args.lifecycle) if args.lifecycle else Lifecycle(
        mode="seconds", seconds=args.batch_delay)
    return MockConfig(
        client_code=args.client_code,
        lifecycle=lifecycle,
        auth=args.auth,
        update_delay=args.update_delay,
        bulk_calls_per_minute=args.bulk_rate_limit,
        status_host=args.status_host,
        seed=0 if args.seed is None else args.seed,
        # anyone who can reach the server could predict the tokens of a seeded run
        random_tokens=args.seed is None and args.host not in LOOPBACK,
        journal_size=args.journal_size,
        journal_bytes=args.journal_bytes,
        batch_retention_bytes=args.batch_retention_bytes,
        max_tenants=args.max_tenants,
        profile_lifetime=None if args.profile_lifetime is None else args.profile_lifetime * 86_400.0,
        login_sync_delay=args.login_sync_delay,
        location_hint=args.location_hint,
        control_token=args.control_token,
    )


def _raise_open_files(connections: int) -> None:
    """Let the process open a descriptor per connection (many systems start it at 1,024)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 64  # the listener, the workers' files, spooled bodies
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):  # a limit we may not change: keep the one we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _stop(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def _fail(message: str) -> int:
    print(f"target-profile-mock: error: {message}", file=sys.stderr, flush=True)
    return 2


def _listen_error(host: str, port: int, exc: OSError) -> str:
    where = f"cannot listen on {host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return f"{where}: the port is already in use (another server?); --port 0 picks a free port"
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied (ports below 1024 need privileges); --port 0 picks a free port"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{where}: {host} is not an address of this machine (--host 127.0.0.1 or 0.0.0.0 are)"
    return f"{where}: {exc.strerror or exc}"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "verify":
        from . import verify

        return verify.main(args.cassettes, dict(args.setting))
    from .server import make_server, tune_allocator

    tune_allocator()  # this process is the server's own: let freed batch memory go back to the system

    try:
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:  # gaierror, or a name IDNA cannot encode
        return _fail(f"--host {args.host}: no such interface or host name ({exc}); "
                     "use an address such as 127.0.0.1 or 0.0.0.0")
    if args.workers > 1 and (problem := _workers_refusal(args)):
        return _fail(problem)

    config = config_from_args(args)
    try:
        backend = _backend(config, args)
    except ControlError as exc:
        return _fail(f"--store: {exc}")
    if args.state_file:
        problem = _load_state(backend, args.state_file)
        if problem:
            backend.store.close()
            return _fail(f"--state-file: {problem}")
    if args.fault_profile:
        try:
            rules = backend.faults.load_file(args.fault_profile)
        except ControlError as exc:
            backend.store.close()
            return _fail(f"--fault-profile: {exc}")
        print(f"target-profile-mock: {len(rules)} fault rule(s) queued from {args.fault_profile}", flush=True)
    if args.workers > 1:
        backend.store.close()  # the parent holds no state: each worker opens the store after the fork
        return _serve_workers(config, args)
    app = create_app(backend)
    if args.tls:
        from .certs import CertError
        from .front import run_tls, start_tls

        # each connection through the front holds its own socket and one to waitress
        _raise_open_files(3 * args.connection_limit)
        try:
            front, ca, made = start_tls(app, args)
        except CertError as exc:
            return _fail(str(exc))
        except OSError as exc:
            return _fail(_listen_error(args.host, args.port, exc))
        status = run_tls(front, ca, made, args, _details(config, args), _stop)
        return _save_state(backend, status)
    try:
        _raise_open_files(args.connection_limit)
        server = make_server(app, args.host, args.port, args.threads, connection_limit=args.connection_limit,
                             channel_timeout=args.channel_timeout)
    except OSError as exc:
        return _fail(_listen_error(args.host, args.port, exc))
    except ValueError as exc:  # waitress: a host it cannot bind, though it resolved
        return _fail(f"--host {args.host}: cannot listen there ({exc})")
    # handle the signals before printing the URL: a supervisor may stop the server as soon as it reads it;
    # SIGINT explicitly too, as a shell that starts us in the background leaves it ignored
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        _announce(server.effective_host, server.effective_port, config, args)  # type: ignore[attr-defined]
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
    status = _save_state(backend, 0)
    backend.store.close()
    print("target-profile-mock stopped", flush=True)
    return status


def _workers_refusal(args: argparse.Namespace) -> str | None:
    """Why ``--workers`` > 1 cannot be served with these options, if it cannot."""
    from .workers import can_fork

    if not can_fork():
        return (f"--workers {args.workers}: this platform has no fork() (the workers are forked processes, "
                "POSIX only); use --workers 1")
    if args.store is None:
        return (f"--workers {args.workers} needs a shared store: with the in-memory store each worker would be "
                "a separate fake; add --store redis://HOST:PORT/DB (or use --workers 1)")
    if args.tls:
        return f"--workers {args.workers}: --tls serves from one process; use --workers 1 with --tls"
    return None


def _backend(config: MockConfig, args: argparse.Namespace) -> MockBackend:
    """A backend on the store ``--store`` names (ControlError when it cannot be opened)."""
    from .store import open_store

    return MockBackend(config, store=open_store(args.store, prefix=args.store_prefix))


def _details(config: MockConfig, args: argparse.Namespace) -> str:
    """What the "serving on" line says of the server besides its URL."""
    details = (f"client code {config.client_code}, lifecycle {config.lifecycle.spec()}, "
               f"auth {'on' if config.auth else 'off'}")
    if args.store is not None:
        details += f", store {shown_url(args.store)} prefix {args.store_prefix}"
    if args.workers > 1:
        details += f", {args.workers} workers"
    return details


def _announce(host: str, port: int, config: MockConfig, args: argparse.Namespace) -> None:
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"target-profile-mock serving on http://{shown}:{port} ({_details(config, args)})", flush=True)
    if config.random_tokens:
        print("target-profile-mock: listening beyond loopback: profile API tokens are drawn at random "
              "(give --seed to make them repeat)", file=sys.stderr, flush=True)
    if args.host not in LOOPBACK and not args.control_token:
        print("target-profile-mock: warning: listening beyond loopback with an unlocked control API; "
              "anyone who reaches it can reset it (use --control-token)", file=sys.stderr, flush=True)


def _serve_workers(config: MockConfig, args: argparse.Namespace) -> int:
    """``--workers N``: the parent listens, forks the workers and waits for them; it writes the state
    file, if any, once they have all stopped."""
    from .workers import listen, run_workers

    _raise_open_files(args.connection_limit)
    try:
        sock = listen(args.host, args.port)
    except OSError as exc:
        return _fail(_listen_error(args.host, args.port, exc))
    host, port = sock.getsockname()[:2]

    def build() -> tuple[object, Callable[[], None]]:
        backend = _backend(config, args)
        backend.state_file = args.state_file  # POST /_mock/snapshot writes it from whichever worker answers
        return create_app(backend), backend.store.close

    status = run_workers(sock, args.workers, build, lambda: _announce(host, port, config, args),
                         threads=args.threads, connection_limit=args.connection_limit,
                         channel_timeout=args.channel_timeout)
    if args.state_file:
        try:
            backend = _backend(config, args)
        except ControlError as exc:
            print(f"target-profile-mock: error: --state-file not written: {exc}", file=sys.stderr, flush=True)
            return 1
        backend.state_file = args.state_file
        status = _save_state(backend, status)
        backend.store.close()
    print("target-profile-mock stopped", flush=True)
    return status


def _save_state(backend: MockBackend, status: int) -> int:
    """Write the state file on the way out, if there is one; the exit status (1 if it cannot be written)."""
    if backend.state_file:
        try:
            size = backend.save()
            print(f"target-profile-mock: state written to {backend.state_file} ({size:,} bytes)", flush=True)
        except ControlError as exc:
            print(f"target-profile-mock: error: {exc}", file=sys.stderr, flush=True)
            return 1
    return status


def _load_state(backend: MockBackend, path: str) -> str | None:
    """Load the state file into the new backend (a missing file starts empty); the problem, if any."""
    if os.path.isdir(path):
        return f"{path!r} is a folder; give a file path"
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return f"cannot write in {folder!r} (the folder must exist and be writable: the state is saved there)"
    if os.path.exists(path) and backend.store.shared and backend.tenants():
        # the shared store is the truth other servers on it work with: never roll it back to a file
        print(f"target-profile-mock: the store already holds state; {path} was not loaded (it is written "
              "from the store on shutdown)", flush=True)
    elif os.path.exists(path):
        try:
            backend.load(path)
        except ControlError as exc:
            # never start over a file that did not load: the next save would replace it
            return f"{exc}; the file was left as it is (move it aside to start empty)"
        print(f"target-profile-mock: state loaded from {path} ({len(backend.tenants())} tenant(s))", flush=True)
    else:
        print(f"target-profile-mock: no state file at {path} yet; starting empty", flush=True)
    backend.state_file = path
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
