"""``headstart lab``: the live race in the browser (``headstart.lab``)."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from typing import Any

from .errors import HeadstartError

__all__ = ["add_lab_command"]


def _cmd_lab(args: argparse.Namespace) -> None:
    try:
        import sse_starlette  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise HeadstartError(f"The lab needs its web stack ({e.name} is missing): "
                             "pip install 'headstart[lab]'.") from None
    from .cli_train import backbone_options, train_options
    from .lab.app import create_app
    from .lab.session import LabSession
    from .race.executors import make_executor

    options, backbone_opts = train_options(args), backbone_options(args)
    executor = make_executor(args.executor, address=args.address, threads=args.threads, device=args.device)
    sock = listen(args.host, args.port)  # before any work: a taken port is a sentence, not a URL that fails
    try:
        session = LabSession.open(args.data, out=args.out, backbone=args.backbone, scratch=args.scratch,
                                  test_limit=args.test_limit, train_options=options, backbone_options=backbone_opts,
                                  load_options=_load_options(args), executor=executor)
        session.describe()  # builds the architecture strips now, so the first page load does not wait for them
        app = create_app(session)
        print(f"headstart lab: {session.task.name} × {session.spec.backbone}, runs in {session.folder}",
              file=sys.stderr)
        print(f"open http://{args.host}:{args.port}/  (Ctrl-C stops; queued runs resume next time)", flush=True)
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (the server serves on it, so nothing can take the port in
    between); a taken port or an unknown host is one sentence."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise HeadstartError(f"--host {host} is not an address of this machine; use 127.0.0.1 (the default) or "
                             "0.0.0.0.") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a lab restarted at once reuses its port
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise HeadstartError(f"Port {port} on {host} is already in use (another lab, or another server); pass "
                                 f"--port {port + 1 if port < 65535 else 8765}, or stop the other one.") from None
        raise HeadstartError(f"Cannot listen on {host}:{port} ({exc.strerror}); pass another --host or --port."
                             ) from None
    return sock


def _load_options(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in ("text_column", "label_column", "encoding", "strict", "normalize_labels")
            if getattr(args, k, None) not in (None, False)}


def add_lab_command(sub: Any, data_options: Any) -> None:
    from .cli_train import add_common_training_flags

    p = sub.add_parser("lab", help="the live race in your browser: train scratch, frozen and fine-tune side by side")
    p.add_argument("data", help="a race folder (written by `compare` or the lab), or data: a named example, a "
                   "CSV/TSV/JSONL/.npz file, or an image folder")
    add_common_training_flags(p)
    p.add_argument("--scratch", choices=("scratch", "scratch-small"),
                   help="the from-scratch entrant (default: the race's; scratch for new data)")
    p.add_argument("--test-limit", type=int, help="score on at most this many selection and test examples each "
                   "(default 500 for data; a race folder keeps its own)")
    p.add_argument("--out", help="where the lab keeps its runs for DATA (default runs/lab-DATA-BACKBONE, reused)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="where the lab's runs train: here (default; epochs stream live) or as Ray tasks")
    p.add_argument("--address", help="with --executor ray: a running Ray cluster (default: a private one here)")
    p.add_argument("--threads", type=int, help="torch threads per run")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    data_options(p)
    p.set_defaults(func=_cmd_lab, strategies=None, seed=None)
