"""`videoscene-backend`: serve, status, release, keygen, run (headless main job), download, check."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from videoscene_protocol import PROTOCOL_VERSION
from videoscene_protocol.errors import VideoSceneError

from .paths import checkpoints_dir, default_output_dir

DEFAULT_ADDRESS = "tcp://127.0.0.1:5557"
KEYS_ENV = "VIDEOSCENE_KEYS_DIR"  # the add-on's private keys for the backend it starts
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
    from videoscene_protocol.private_paths import check_secret_file

    from .service.security import CLIENTS

    keys = Path(args.keys_dir)
    secret = keys / CLIENTS / f"{args.client}.key_secret"
    if not secret.is_file():  # the layout of keygen before per-artist keys
        secret = keys / "client.key_secret"
    check_secret_file(secret)
    server_public, _ = zmq.auth.load_certificate(str(keys / "server.key"))
    client_public, client_secret = zmq.auth.load_certificate(str(secret))
    return {
        "server_public_key": server_public.decode(),
        "client_public_key": client_public.decode(),
        "client_secret_key": client_secret.decode(),
    }


def _serve(args: argparse.Namespace) -> int:
    from .service import BackendService
    from .service.budgets import LIMITS, Budgets

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
            max_queue_per_client=args.max_queue_per_client,
            executor=executor,
            budgets=Budgets(**{name: getattr(args, name) for name in LIMITS}),
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
    if service.abandoned_jobs or not args.pool:
        _exit_now()
    return 0


def _exit_now() -> None:
    """Leave without finalizing the interpreter, once the stop is complete (records written,
    socket closed, output folder unlocked): finalizing with torch loaded takes 0.5-1 s, a
    quarter or more of the 2 s a stop may take (docs/protocol.md), and aborts ("terminate
    called") when the worker is still inside a job that executor.STOP_JOIN_S gave up on; that
    job's work folder is recovered at the next start. With --pool only for an abandoned job:
    otherwise Ray's own exit handlers run."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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
    from .service.security import generate_keys, revoke_client

    try:
        if args.revoke:
            if not revoke_client(args.keys_dir, args.revoke):
                print(f"error: no authorized client {args.revoke!r} in {args.keys_dir}.")
                return 1
            print(f"Revoked {args.revoke}: the server refuses its key within seconds.")
            return 0
        keys = generate_keys(args.keys_dir, args.client, admin=args.admin)
    except (VideoSceneError, OSError) as error:
        message = getattr(error, "message", str(error))
        print(f"error: {message}\nhint: {getattr(error, 'hint', '')}", file=sys.stderr)
        return 2
    print(f"Keys written to {args.keys_dir} (files 0600, folders 0700).")
    print(f"  server public key (give to clients): {keys['server_public']}")
    print(
        f"  client {args.client!r} public key (authorized{', admin' if args.admin else ''}): "
        f"{keys['client_public']}"
    )
    print(
        f"Start the server with --keys-dir; give this artist server.key and "
        f"{keys['client_key_file']} (theirs alone: one key pair per artist, "
        "`keygen KEYS --revoke NAME` to shut one out)."
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
        "--keys-dir",
        type=Path,
        default=os.environ.get(KEYS_ENV) or None,
        help="CurveZMQ keys (required off loopback; default $VIDEOSCENE_KEYS_DIR, which the "
        "add-on sets for its local backend)",
    )
    serve.add_argument("--max-queue", type=int, default=16)
    serve.add_argument(
        "--max-queue-per-client",
        type=int,
        default=4,
        help="queued or running jobs one client key may hold (keyed servers; default 4)",
    )
    from .service.budgets import LIMITS

    for name, limit in LIMITS.items():
        serve.add_argument(
            limit.flag,
            dest=name,
            type=float,
            default=limit.default,
            help=f"{limit.meaning} (default %(default)g {limit.unit}; 0: no limit)",
        )
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
        command.add_argument(
            "--client", default="client", help="client key pair KEYS/clients/NAME.key_secret"
        )
        command.add_argument("--timeout", type=float, default=5.0)
        command.set_defaults(func=func)

    keygen = sub.add_parser("keygen", help="create CurveZMQ server and client key pairs")
    keygen.add_argument("keys_dir", type=Path)
    keygen.add_argument(
        "--client", default="client", help="the artist's name: KEYS/clients/NAME.key(_secret)"
    )
    keygen.add_argument(
        "--admin", action="store_true", help="this client may see and cancel every job"
    )
    keygen.add_argument(
        "--revoke", default=None, metavar="NAME", help="remove NAME's key from the allow-lists"
    )
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
