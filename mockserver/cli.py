"""``target-profile-mock serve``: the standalone server, with embedded defaults."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from .app import create_app
from .backend import ControlError, MockBackend
from .config import MockConfig
from .lifecycle import Lifecycle, LifecycleError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="target-profile-mock",
                                description="A stateful fake of Adobe Target's Profile APIs.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the standalone mock server")
    s.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port (default: 8080; 0 picks a free port)")
    s.add_argument("--client-code", default="demo",
                   help="tenant for /m2/client/... paths when the Host header names none (default: demo)")
    s.add_argument("--auth", action="store_true", help="require Authorization: Bearer <token> on profile APIs")
    s.add_argument("--batch-delay", type=float, default=2.0, metavar="SECONDS",
                   help="batches complete this long after submission (default: 2)")
    s.add_argument("--lifecycle", metavar="SPEC",
                   help="batch lifecycle spec, e.g. 'polls=2', 'seconds=5,stuck', 'immediate,failed=10%%' "
                        "(overrides --batch-delay)")
    s.add_argument("--update-delay", type=float, default=0.0, metavar="SECONDS",
                   help="single updates become visible after this long (default: 0)")
    s.add_argument("--bulk-rate-limit", type=int, default=50, metavar="N",
                   help="bulk calls per minute per tenant before HTTP 503 (default: 50; 0 turns it off)")
    s.add_argument("--status-host", metavar="HOST[:PORT]",
                   help="host written into batchStatus URLs (default: the host the client used)")
    s.add_argument("--seed", type=int, default=0, help="seed for ids and scripted outcomes (default: 0)")
    s.add_argument("--journal-size", type=int, default=10_000, metavar="N",
                   help="requests kept in the journal (default: 10000)")
    s.add_argument("--control-token", metavar="TOKEN",
                   help="require X-Mock-Token: TOKEN on the /_mock/ control API")
    s.add_argument("--threads", type=int, default=8, help="worker threads (default: 8)")
    s.add_argument("--fault-profile", metavar="FILE",
                   help="queue the faults in this JSON file at start (the body POST /_mock/faults takes)")
    return p


def config_from_args(args: argparse.Namespace) -> MockConfig:
    try:
        lifecycle = Lifecycle.parse(args.lifecycle) if args.lifecycle else Lifecycle(
            mode="seconds", seconds=args.batch_delay)
        lifecycle.validate()
    except LifecycleError as exc:
        raise SystemExit(f"target-profile-mock: --lifecycle: {exc}") from None
    return MockConfig(
        client_code=args.client_code,
        lifecycle=lifecycle,
        auth=args.auth,
        update_delay=args.update_delay,
        bulk_calls_per_minute=args.bulk_rate_limit or None,
        status_host=args.status_host,
        seed=args.seed,
        journal_size=args.journal_size,
        control_token=args.control_token,
    )


def _stop(signum: int, frame: object) -> NoReturn:
    raise SystemExit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from .server import make_server

    config = config_from_args(args)
    backend = MockBackend(config)
    if args.fault_profile:
        try:
            rules = backend.faults.load_file(args.fault_profile)
        except ControlError as exc:
            print(f"target-profile-mock: --fault-profile: {exc}", file=sys.stderr)
            return 2
        print(f"target-profile-mock: {len(rules)} fault rule(s) queued from {args.fault_profile}", flush=True)
    app = create_app(backend)
    try:
        server = make_server(app, args.host, args.port, args.threads)
    except OSError as exc:
        print(f"target-profile-mock: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    host = server.effective_host  # type: ignore[attr-defined]
    shown = f"[{host}]" if ":" in str(host) else host
    # handle the signals before printing the URL: a supervisor may stop the server as soon as it reads it;
    # SIGINT explicitly too, as a shell that starts us in the background leaves it ignored
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        print(f"target-profile-mock serving on http://{shown}:{server.effective_port}"  # type: ignore[attr-defined]
              f" (client code {config.client_code}, lifecycle {config.lifecycle.spec()}, "
              f"auth {'on' if config.auth else 'off'})", flush=True)
        if args.host not in LOOPBACK and not args.control_token:
            print("target-profile-mock: warning: listening beyond loopback with an unlocked control API; "
                  "anyone who reaches it can reset it (use --control-token)", file=sys.stderr, flush=True)
        server.run()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.close()
    print("target-profile-mock stopped", flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
