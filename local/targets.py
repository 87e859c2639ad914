"""Which Triton the client tools talk to: an explicit URL, a deployed stack, or a local server started for the run.

* ``--url host:port``          a gRPC endpoint as is;
* ``--stack-outputs FILE|-``   the ``tritonEndpoints`` of saved ``pulumi stack output --json`` (one entry per pool);
* ``--stack NAME``             the same, read by running the Pulumi CLI;
* ``--local NAME``             the stack's CPU repository rendered to a temporary directory and served by a
                               local tritonserver for the duration of the command (``--only`` narrows it).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from local import stack_outputs


@dataclass(frozen=True)
class ServingEndpoint:
    name: str  # pool name, "url" or "local"
    grpc: str
    models: tuple[str, ...] = ()


def add_arguments(parser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--url", help="Triton gRPC endpoint, host:port")
    group.add_argument("--stack-outputs", metavar="FILE", help="saved `pulumi stack output --json` ('-': stdin)")
    group.add_argument("--stack", help="read the endpoints with `pulumi stack output --json --stack NAME`")
    group.add_argument("--local", metavar="STACK", help="serve STACK's cpu repository on a local tritonserver")
    parser.add_argument("--pool", help="only this pool of a deployed stack")
    parser.add_argument(
        "--only",
        type=lambda s: [n for n in s.split(",") if n],
        default=[],
        help="with --local: serve only these models (and what they call)",
    )


@contextlib.contextmanager
def resolve(args) -> Iterator[list[ServingEndpoint]]:
    """The endpoints named by the arguments; a ``--local`` server lives until the block ends."""
    if args.url:
        yield [ServingEndpoint("url", args.url)]
        return
    if args.local:
        with local_server(args.local, args.only) as target:
            yield [target]
        return
    text = stack_outputs.read(args.stack_outputs) if args.stack_outputs else stack_outputs.from_pulumi(args.stack)
    source = args.stack_outputs or f"stack {args.stack}"
    pools = stack_outputs.parse(text, source)
    if args.pool:
        pools = [p for p in pools if p.pool == args.pool]
        if not pools:
            raise stack_outputs.StackOutputError(f"--pool {args.pool}: not among the pools of {source}")
    yield [ServingEndpoint(p.pool, p.grpc, p.models) for p in pools]


@contextlib.contextmanager
def local_server(stack: str, only: Sequence[str] = ()) -> Iterator[ServingEndpoint]:
    from local.platform_run import EXIT_TIMEOUT_S, stack_models
    from model_repo.local_server import TritonServer
    from model_repo.render import render_repository

    work = Path(tempfile.mkdtemp(prefix="local-target-"))
    try:
        result = render_repository(stack_models(stack, only), "cpu", work / "repository")
        with TritonServer(
            result.out, work_dir=work / "server", startup_timeout_s=600, exit_timeout_s=EXIT_TIMEOUT_S
        ) as s:
            yield ServingEndpoint("local", s.endpoints.grpc)
    finally:
        shutil.rmtree(work, ignore_errors=True)
