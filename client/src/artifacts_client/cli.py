"""``jobartifacts``: the client library as a command line, for shells and CI scripts.

Every command is a thin layer over ``Client``: parse, call, print. Plain output is a
table or one line per thing, meant for people; ``--json`` prints the library's documents
for scripts (on stdout; messages and the progress bar go to stderr). A failure is one line
on stderr, ``jobartifacts: error: <message> (<CODE>)``, and an exit code a script can test:

    0 success · 1 an error (the API's, the network's, a download's) · 2 bad usage or
    settings · 3 ``wait --exit-status``: the job ended but did not succeed ·
    124 ``--timeout`` expired · 130 interrupted
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn, TextIO

from artifacts_client import config
from artifacts_client.client import Client
from artifacts_client.errors import ClientError, WaitTimeout
from artifacts_client.models import CleanupState, InputArtifact, Job, JobPhase, Retention
from artifacts_client.progress import NoProgress, Progress, ProgressBar, human_size

__all__ = ["EXIT_ERROR", "EXIT_NOT_SUCCEEDED", "EXIT_TIMEOUT", "EXIT_USAGE", "main", "run"]

PROG = "jobartifacts"
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_SUCCEEDED = 3
EXIT_TIMEOUT = 124
EXIT_INTERRUPTED = 130

DESCRIPTION = """\
List jobs, wait for them and download their artifacts from the job artifacts API.

The API address comes from --api-url or JOBARTIFACTS_API_URL (default %(url)s);
the bearer token from --token-file, JOBARTIFACTS_TOKEN or JOBARTIFACTS_TOKEN_FILE
(--token works too, but shows in process listings). Common options may come before
or after the command.
"""

EPILOG = """\
examples:
  jobartifacts jobs --limit 5
  jobartifacts wait job-202009250153-34s0ti --timeout 600 && \\
    jobartifacts download job-202009250153-34s0ti -o results/
  jobartifacts artifacts job-202009250153-34s0ti --json
  jobartifacts logs job-202009250153-34s0ti --follow --tail 100
  jobartifacts extend job-202009250153-34s0ti --days 30

exit codes: 0 success, 1 error, 2 bad usage, 3 the waited job did not succeed
(wait --exit-status), 124 --timeout expired, 130 interrupted.
"""


class UsageError(Exception):
    """A setting the user gave cannot work (bad URL, unreadable token file)."""


# Output


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"


def _table(rows: Sequence[Sequence[str]], out: TextIO, right: frozenset[int] = frozenset()) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        print("  ".join(cells).rstrip(), file=out)


def _print_json(document: Any, out: TextIO) -> None:
    json.dump(document, out, indent=2, ensure_ascii=False)
    out.write("\n")


class Output:
    """Where a command writes: stdout for results, stderr for notes and progress."""

    def __init__(self, args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> None:
        self.json: bool = args.json
        self.quiet: bool = args.quiet
        self.stdout = stdout
        self.stderr = stderr

    def note(self, message: str) -> None:
        if not self.quiet:
            print(f"{PROG}: {message}", file=self.stderr)


def _input_artifact(value: str) -> InputArtifact:
    try:
        return InputArtifact.parse(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


# Commands


def cmd_jobs(client: Client, args: argparse.Namespace, out: Output) -> int:
    jobs = client.jobs(limit=args.limit, group=args.group, phase=args.phase, user=args.user)
    if out.json:
        _print_json([job.to_json() for job in jobs], out.stdout)
        return 0
    rows = [["ID", "PHASE", "GROUP", "CREATED", "NAME"]]
    rows += [
        [job.id, job.phase.value, job.group_name, _time(job.create_time), job.display_name]
        for job in jobs
    ]
    _table(rows, out.stdout)
    if not jobs:
        out.note("no jobs")
    return 0


def _print_job(job: Job, out: Output) -> None:
    if out.json:
        _print_json(job.to_json(), out.stdout)
        return
    fields = [
        ("id", job.id),
        ("name", job.display_name),
        ("group", job.group_name),
        ("user", job.user_name or "-"),
        ("phase", job.phase.value + (" (cancel requested)" if job.cancel_requested else "")),
        ("image", job.image or "-"),
        ("created", _time(job.create_time)),
        ("started", _time(job.start_time)),
        ("finished", _time(job.finish_time)),
        ("message", job.message or "-"),
        ("command", job.command),
    ]
    fields += [
        ("input", f"{item.job_id}:{item.path}" if item.path else item.job_id) for item in job.inputs
    ]
    for name, value in fields:
        print(f"{name + ':':<10}{value}", file=out.stdout)


def cmd_job(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_job(client.job(args.id), out)
    return 0


def cmd_create(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.create_job(
        args.command,
        group=args.group,
        name=args.name,
        image=args.image,
        retention_seconds=args.retention,
        inputs=args.inputs,
    )
    if out.json:
        _print_json(job.to_json(), out.stdout)
    else:
        print(job.id, file=out.stdout)  # alone on its line: id=$(jobartifacts create ...)
    return 0


def cmd_cancel(client: Client, args: argparse.Namespace, out: Output) -> int:
    job = client.cancel_job(args.id)
    if out.json:
        _print_json(job.to_json(), out.stdout)
    else:
        print(f"{job.id} {job.phase.value} (cancel requested)", file=out.stdout)
    return 0


def cmd_wait(client: Client, args: argparse.Namespace, out: Output) -> int:
    def changed(job: Job) -> None:
        out.note(f"{job.id}: {job.phase.value}")

    job = client.wait_job(args.id, interval=args.interval, timeout=args.timeout, on_change=changed)
    if out.json:
        _print_json(job.to_json(), out.stdout)
    else:
        print(f"{job.id} {job.phase.value}", file=out.stdout)
    if args.exit_status and job.phase is not JobPhase.SUCCEEDED:
        return EXIT_NOT_SUCCEEDED
    return 0


def cmd_artifacts(client: Client, args: argparse.Namespace, out: Output) -> int:
    folder = client.artifact_folder(args.id)
    if out.json:
        _print_json([item.to_json() for item in folder.items], out.stdout)
    else:
        size: Callable[[int], str] = human_size if args.human_readable else str
        rows = [["PATH", "SIZE", "MODIFIED"]]
        rows += [[item.name, size(item.size), _time(item.last_modified)] for item in folder.items]
        _table(rows, out.stdout, right=frozenset({1}))
    if folder.skipped:
        out.note(f"nothing was collected: {folder.skip_reason or 'a limit was exceeded'}")
    elif not folder.items:
        out.note(f"job {folder.job_id} has no artifacts (yet)")
    return 0


def _progress(args: argparse.Namespace, stderr: TextIO) -> Progress:
    wanted = args.progress if args.progress is not None else stderr.isatty()
    return ProgressBar(stderr) if wanted and not args.quiet else NoProgress()


def cmd_download(client: Client, args: argparse.Namespace, out: Output) -> int:
    downloads = client.download_artifacts(
        args.id,
        args.output,
        names=args.names or None,
        overwrite=args.overwrite,
        workers=args.workers,
        progress=_progress(args, out.stderr),
    )
    if out.json:
        _print_json([download.to_json() for download in downloads], out.stdout)
        return 0
    for download in downloads:
        print(
            f"{download.name} -> {download.path} "
            f"({human_size(download.size)}, {download.verified} verified)",
            file=out.stdout,
        )
    if not downloads:
        out.note(f"job {args.id} has no artifacts to download")
    return 0


_TERMINAL_UNSAFE = re.compile(rb"(\x1b\[[0-9;]*m)|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control bytes a job could use to drive the reader's terminal (set its title, move the
cursor, rewrite what was shown); colours (SGR sequences) are harmless and kept."""


def for_terminal(data: bytes) -> bytes:
    """``data`` safe to show on a terminal: each control byte but tab, newline and carriage
    return becomes ``?``, colour sequences stay."""
    return _TERMINAL_UNSAFE.sub(lambda match: match.group(1) or b"?", data)


def cmd_logs(client: Client, args: argparse.Namespace, out: Output) -> int:
    raw = args.raw or not out.stdout.isatty()
    sink = getattr(out.stdout, "buffer", None)
    for chunk in client.logs(args.id, follow=args.follow, tail=args.tail):
        data = chunk if raw else for_terminal(chunk)
        if sink is not None:
            sink.write(data)
            sink.flush()
        else:
            out.stdout.write(data.decode("utf-8", "replace"))
            out.stdout.flush()
    return 0


def _print_retention(retention: Retention, out: Output) -> None:
    if out.json:
        _print_json(retention.to_json(), out.stdout)
    else:
        print(f"{retention.job_id} {retention.state}: {retention.reason}", file=out.stdout)


def cmd_keep(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_retention(client.keep_artifacts(args.id), out)
    return 0


def cmd_extend(client: Client, args: argparse.Namespace, out: Output) -> int:
    _print_retention(client.extend_artifacts(args.id, days=args.days), out)
    return 0


def cmd_delete(client: Client, args: argparse.Namespace, out: Output) -> int:
    deleted = client.delete_artifacts(args.id)
    if out.json:
        _print_json({"job_id": args.id, "deleted": deleted}, out.stdout)
    else:
        said = "artifacts deleted" if deleted else "had no artifacts stored"
        print(f"{args.id} {said}", file=out.stdout)
    return 0


def cmd_cleanup(client: Client, args: argparse.Namespace, out: Output) -> int:
    run = client.cleanup(
        rescan=args.rescan, wait=args.wait, interval=args.interval, timeout=args.timeout
    )
    if out.json:
        _print_json(run.to_json(), out.stdout)
        return 0
    line = f"{run.id} {run.state.value}"
    if run.result is not None:
        result = run.result
        scanned = f", rescanned {result.folders_scanned} folders" if result.rescanned else ""
        line += (
            f": {result.outcome}, {result.index_due} due in the index{scanned}, "
            f"{result.folders_deleted} deleted ({result.objects_deleted} objects, "
            f"{human_size(result.bytes_freed)} freed), {result.folders_skipped} skipped, "
            f"{result.folders_failed} failed"
        )
    if run.error:
        line += f": {run.error}"
    print(line, file=out.stdout)
    return EXIT_ERROR if run.state is CleanupState.FAILED else 0


# Parser


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return number


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value!r}")
    return number


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _common() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (defaults filled in later)."""
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    group = common.add_argument_group("connection and output")
    group.add_argument(
        "--api-url",
        metavar="URL",
        help=f"the API's address (env {config.ENV_API_URL}; default {config.DEFAULT_API_URL})",
    )
    group.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"read the bearer token from PATH (env {config.ENV_TOKEN_FILE})",
    )
    group.add_argument(
        "--token",
        metavar="TOKEN",
        help=f"the bearer token itself; prefer env {config.ENV_TOKEN} or --token-file",
    )
    group.add_argument(
        "--request-timeout",
        type=_positive_float,
        metavar="SECONDS",
        help="give up on an API request after SECONDS (default 30)",
    )
    group.add_argument("--json", action="store_true", help="print JSON documents on stdout")
    group.add_argument("-q", "--quiet", action="store_true", help="no notes or progress on stderr")
    return common


_DEFAULTS: dict[str, Any] = {
    "api_url": None,
    "token_file": None,
    "token": None,
    "request_timeout": 30.0,
    "json": False,
    "quiet": False,
}


def _job_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="the job's id, e.g. job-202009250153-34s0ti")


def _add_wait_options(parser: argparse.ArgumentParser, interval: float, what: str) -> None:
    parser.add_argument(
        "--interval",
        type=_positive_float,
        default=interval,
        metavar="SECONDS",
        help=f"poll every SECONDS (default {interval:g})",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        help=f"give up after SECONDS with exit code {EXIT_TIMEOUT} (default: wait {what})",
    )


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION % {"url": config.DEFAULT_API_URL},
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, summary: str, run: Callable[..., int], **kwargs: Any) -> Any:
        sub = commands.add_parser(
            name,
            help=summary,
            description=kwargs.pop("description", summary),
            parents=[common],
            formatter_class=argparse.RawDescriptionHelpFormatter,
            **kwargs,
        )
        sub.set_defaults(run=run)
        return sub

    jobs = command("jobs", "list the jobs you may see, newest first", cmd_jobs)
    jobs.add_argument("--limit", type=_positive_int, default=20, help="at most N jobs (20)")
    jobs.add_argument("--group", help="only this group's jobs")
    jobs.add_argument(
        "--phase", choices=[phase.value for phase in JobPhase], help="only jobs in this phase"
    )
    jobs.add_argument("--user", help="only this user's jobs")

    _job_id_argument(command("job", "show one job", cmd_job))

    create = command(
        "create",
        "submit a job; prints its id",
        cmd_create,
        description="Submit a job. The command runs with bash in the job's home folder; "
        "whatever it leaves in ./artifacts is collected when it ends. Prints the new id.",
        epilog="example:\n  id=$(jobartifacts create --group team-a "
        "'mkdir -p artifacts; date > artifacts/when.txt')",
    )
    create.add_argument("command", metavar="COMMAND", help="the shell command to run")
    create.add_argument("-g", "--group", required=True, help="the group the job runs for")
    create.add_argument("--name", help="a display name (default: the command's first line)")
    create.add_argument("--image", help="the container image (default: the platform's)")
    create.add_argument(
        "--retention",
        type=int,
        metavar="SECONDS",
        help="keep the artifacts SECONDS after the job ends (default: the platform's)",
    )
    create.add_argument(
        "--input",
        dest="inputs",
        action="append",
        default=[],
        type=_input_artifact,
        metavar="JOB[:PATH]",
        help="place JOB's artifacts (or its file or folder PATH) under ~/inputs/JOB/ before "
        "the command starts; repeatable",
    )

    _job_id_argument(command("cancel", "ask a job to stop", cmd_cancel))

    wait = command(
        "wait",
        "wait until a job has ended; prints its final phase",
        cmd_wait,
        description="Poll a job until it has ended (Succeeded, Failed or Cancelled) and print "
        f"its id and phase. Phase changes are noted on stderr. Exit code {EXIT_TIMEOUT} when "
        "--timeout expires first.",
    )
    _job_id_argument(wait)
    _add_wait_options(wait, 2.0, "as long as it takes")
    wait.add_argument(
        "--exit-status",
        action="store_true",
        help=f"exit with {EXIT_NOT_SUCCEEDED} unless the job Succeeded",
    )

    artifacts = command(
        "artifacts",
        "list a job's artifact files: path, size, modified",
        cmd_artifacts,
        description="List a job's artifact files: path relative to ~/artifacts, size in bytes, "
        "last modified (UTC). --json adds sha256 and a short-lived download_url.",
    )
    _job_id_argument(artifacts)
    artifacts.add_argument(
        "-H", "--human-readable", action="store_true", help="sizes as 6 B, 1.5 MiB..."
    )

    download = command(
        "download",
        "download a job's artifacts, verified",
        cmd_download,
        description="Download a job's artifacts (all, or the NAMEs given) into DIR, keeping "
        "their relative paths. Each file is checked against the listed size and sha256 "
        "before it is put in place; a file that does not match is not kept. Existing files "
        "are not replaced unless --overwrite.",
    )
    _job_id_argument(download)
    download.add_argument("names", nargs="*", metavar="NAME", help="artifact paths, e.g. sub/a.txt")
    download.add_argument(
        "-o", "--output", default=".", metavar="DIR", help="the folder to write to (default .)"
    )
    download.add_argument("--overwrite", action="store_true", help="replace existing files")
    download.add_argument(
        "--workers", type=_positive_int, default=4, metavar="N", help="files at once (default 4)"
    )
    download.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )

    logs = command(
        "logs",
        "print a job's log (stdout and stderr, then the collection's lines)",
        cmd_logs,
        description="Print what the job wrote: its output while it runs (from the pod or the "
        "local runtime), the copy kept with its artifacts once it has ended, until they expire. "
        "On a terminal, control characters a job printed are shown as '?' (colours are kept).",
    )
    _job_id_argument(logs)
    logs.add_argument(
        "-f", "--follow", action="store_true", help="keep printing new lines until the job ends"
    )
    logs.add_argument(
        "--tail", type=_count, metavar="N", help="start with the last N lines (default: all)"
    )
    logs.add_argument(
        "--raw", action="store_true", help="print the bytes as they are, even on a terminal"
    )

    _job_id_argument(
        command(
            "keep",
            "keep a job's artifacts until they are deleted by hand (admins)",
            cmd_keep,
            description="Keep the job's artifacts until deleted by hand: only admins may. "
            "Prints the retention sentence, e.g. 'kept by root on 3 Dec'.",
        )
    )
    extend = command(
        "extend",
        "move a job's artifact expiry later",
        cmd_extend,
        description="Move the expiry DAYS later (from the current expiry, or from now once it "
        "has passed). Members of the job's group may go up to the API's "
        "ARTIFACT_MAX_RETENTION_SECONDS (90 days by default) after now; admins beyond.",
    )
    _job_id_argument(extend)
    extend.add_argument(
        "--days", type=_positive_float, default=7.0, metavar="DAYS", help="default 7"
    )
    _job_id_argument(
        command(
            "delete",
            "delete a job's artifacts now",
            cmd_delete,
            description="Delete every artifact of the job now (its group's members and admins). "
            "This cannot be undone.",
        )
    )

    cleanup = command(
        "cleanup",
        "delete expired artifacts now (admins)",
        cmd_cleanup,
        description="Ask the janitor to delete expired artifacts now and print the run's id and "
        "state (the run already queued or running, if there is one). Admins only.",
    )
    cleanup.add_argument("--wait", action="store_true", help="wait for the run's result")
    cleanup.add_argument(
        "--rescan",
        action="store_true",
        help="also scan every job folder into the expiry index (done by the next run to start)",
    )
    _add_wait_options(cleanup, 1.0, "as long as it takes")
    return parser


def _client(args: argparse.Namespace) -> Client:
    try:
        return Client(
            args.api_url,
            config.token(args.token, args.token_file),
            timeout=args.request_timeout,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None


def run(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run one command; the exit code. ``main`` is this with ``sys.exit``."""
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    for name, value in _DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, value)
    out = Output(args, stdout, stderr)
    try:
        code: int = args.run(_client(args), args, out)
        return code
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=stderr)
        return EXIT_USAGE
    except WaitTimeout as err:
        print(f"{PROG}: error: {err.message} ({err.code})", file=stderr)
        if out.json:
            _print_json(err.last.to_json(), stdout)
        return EXIT_TIMEOUT
    except ClientError as err:
        print(f"{PROG}: error: {err.message} ({err.code})", file=stderr)
        return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> NoReturn:
    try:
        code = run(argv)
        sys.stdout.flush()
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        # `jobartifacts jobs | head -1`: the reader left; that is not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    sys.exit(code)
