"""`videoscene-backend`: serve, status, release, keygen, run (headless main job), download, check."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.errors import VideoSceneError

from .paths import checkpoints_dir, default_output_dir

DEFAULT_ADDRESS = "tcp://127.0.0.1:5557"
DISTRIBUTION = "videoscene-blender"  # pyproject's project name


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # run from a source tree without installing it
        return "unknown"


def _client_keys(args: argparse.Namespace) -> dict:
    if not getattr(args, "keys_dir", None):
        return {}
    import zmq.auth

    keys = Path(args.keys_dir)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    client_public, client_secret = zmq.auth.load_certificate(str(keys / "client.key_secret"))
    return {
        "server_public_key": server_public.decode(),
        "client_public_key": client_public.decode(),
        "client_secret_key": client_secret.decode(),
    }


def _serve(args: argparse.Namespace) -> int:
    from .service import BackendService

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        executor = _pool_executor(args) if args.pool else None  # None: one local worker
        service = BackendService(
            args.bind,
            args.output_dir or default_output_dir(),
            args.checkpoints or checkpoints_dir(),
            keys_dir=args.keys_dir,
            max_queue=args.max_queue,
            executor=executor,
        )
    except VideoSceneError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return 2
    import signal

    # SIGTERM and Ctrl-C stop the loop; serve_forever then interrupts the jobs (they read as
    # `interrupted`), joins the worker, closes the socket and returns: exit code 0.
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: service.stop())
    service.serve_forever()
    return 0


def _pool_executor(args: argparse.Namespace):
    """`--pool ray[:ADDRESS]`: jobs run on Ray Serve replicas (docs/pool.md). Imports Ray."""
    from .service.pool import PoolConfig, parse_pool_option, start_pool

    config = PoolConfig(
        address=parse_pool_option(args.pool),
        checkpoints_dir=args.checkpoints or checkpoints_dir(),
        replicas=args.replicas,
    )
    return start_pool(config)


def _short_request(args: argparse.Namespace, request) -> int:
    """Connect to a running backend, print one request's JSON answer."""
    from videoscene_protocol.client import BackendClient

    client = BackendClient(args.address, **_client_keys(args))
    try:
        client.connect(timeout_s=args.timeout)
        print(json.dumps(request(client, args.timeout), indent=2))
        return 0
    except VideoSceneError as error:
        print(f"error: {error.message}\nhint: {error.hint}", file=sys.stderr)
        return 1
    finally:
        client.close()


def _status(args: argparse.Namespace) -> int:
    return _short_request(args, lambda client, timeout: client.status(timeout_s=timeout))


def _release(args: argparse.Namespace) -> int:
    return _short_request(args, lambda client, timeout: client.release_models(timeout_s=timeout))


def _keygen(args: argparse.Namespace) -> int:
    from .service.security import generate_keys

    keys = generate_keys(args.keys_dir)
    print(f"Keys written to {args.keys_dir}.")
    print(f"  server public key (give to clients): {keys['server_public']}")
    print(f"  client public key (authorized):     {keys['client_public']}")
    print(
        "Start the server with --keys-dir; give artists server.key, client.key and client.key_secret."
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videoscene-backend", description="VideoScene GPU backend"
    )
    parser.add_argument(  # the add-on's preferences show this line for the backend they found
        "--version",
        action="version",
        version=f"%(prog)s {_version()} (protocol {PROTOCOL_VERSION})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the backend service")
    serve.add_argument(
        "--bind", default=DEFAULT_ADDRESS, help="ZeroMQ address (default %(default)s)"
    )
    serve.add_argument(
        "--output-dir", type=Path, default=None, help="results go to OUTPUT/jobs/<id>/"
    )
    serve.add_argument(
        "--checkpoints", type=Path, default=None, help="weights folder (default checkpoints/)"
    )
    serve.add_argument(
        "--keys-dir", type=Path, default=None, help="CurveZMQ keys (required off loopback)"
    )
    serve.add_argument("--max-queue", type=int, default=16)
    serve.add_argument(
        "--pool",
        default=None,
        metavar="ray[:ADDRESS]",
        help="run jobs on Ray Serve replicas: 'ray' starts Ray on this machine, "
        "'ray:HEAD_HOST:6379' joins a cluster (docs/pool.md; needs the pool extra)",
    )
    serve.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="pool replicas (default: one per GPU in the cluster, else 1)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.set_defaults(func=_serve)

    for name, func, help_text in (
        ("status", _status, "print a running backend's status"),
        ("release", _release, "free the backend's loaded models"),
    ):
        command = sub.add_parser(name, help=help_text)
        command.add_argument("--address", default=DEFAULT_ADDRESS)
        command.add_argument("--keys-dir", type=Path, default=None)
        command.add_argument("--timeout", type=float, default=5.0)
        command.set_defaults(func=func)

    keygen = sub.add_parser("keygen", help="create CurveZMQ server and client key pairs")
    keygen.add_argument("keys_dir", type=Path)
    keygen.set_defaults(func=_keygen)

    from .check import register_cli as register_check
    from .headless import register_cli as register_run
    from .weights.download import register_cli as register_download

    register_run(sub)
    register_download(sub)
    register_check(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    finally:
        _stop_zmq_garbage_collector()


def _stop_zmq_garbage_collector() -> None:
    """End pyzmq's zero-copy bookkeeping thread (and its zmq context) now, once every socket of
    ours is closed, rather than from an exit handler while the interpreter is finalizing: no
    native thread outlives the command (the services and clients stop and join their own)."""
    garbage = sys.modules.get("zmq.utils.garbage")
    if garbage is not None:
        garbage.gc.stop()


if __name__ == "__main__":
    sys.exit(main())
