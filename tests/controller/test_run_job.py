"""run-job.sh in ``phfs`` mode, run for real with bash in a temporary home.

Each test runs the script as the pod would (working directory = the home, the pod's
variables in a clean environment) and checks what landed in the PHFS job folder, the
manifest, ``expiredAt``, the log lines and the exit code.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
from pathlib import Path

import pytest
from support.jobs import GROUP, JOB, JobHome, tree

from artifacts_shared.expiry import parse_expired_at

SEED_COMMAND = (
    'mkdir -p artifacts/sub; echo "hello" > artifacts/test.txt; '
    'echo "hello" > artifacts/sub/test.txt'
)
HELLO_SHA = hashlib.sha256(b"hello\n").hexdigest()
WEEK = 604_800


def _write(path: Path, content: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_seed_journey_collects_exactly_the_two_files_with_manifest_and_expiry(
    job: JobHome,
) -> None:
    run = job.run(SEED_COMMAND)

    assert run.returncode == 0, run.stderr
    assert job.collected() == {"test.txt": b"hello\n", "sub/test.txt": b"hello\n"}
    manifest = job.manifest()
    assert (manifest.job, manifest.group, manifest.exit_code) == (JOB, GROUP, 0)
    assert [(f.name, f.size, f.sha256) for f in manifest.files] == [
        ("test.txt", 6, HELLO_SHA),
        ("sub/test.txt", 6, HELLO_SHA),
    ]
    assert (manifest.file_count, manifest.total_size, manifest.skipped) == (2, 12, False)
    assert (manifest.limits.size_mb, manifest.limits.files) == (100, 1000)
    expired_at = parse_expired_at((job.metadata / "expiredAt").read_bytes())
    assert run.started_at - 2 <= expired_at - WEEK <= run.ended_at + 2
    assert manifest.expired_at == expired_at
    assert (job.metadata / "expiredAt").read_bytes() == str(expired_at).encode()
    assert f"artifacts: 2 files, 12 B copied to {job.job_folder}" in run.decisions


def test_command_that_exits_3_still_collects_and_exits_3(job: JobHome) -> None:
    run = job.run(SEED_COMMAND + "; exit 3")

    assert run.returncode == 3
    assert set(job.collected()) == {"test.txt", "sub/test.txt"}
    assert job.manifest().exit_code == 3
    assert "run-job: the command exited with code 3" in run.decisions


def test_the_command_runs_in_the_home_with_its_output_untouched(job: JobHome) -> None:
    run = job.run('pwd; echo "to stderr" >&2')

    assert run.stdout == f"{job.home}\n"
    assert "to stderr" in run.stderr


def test_several_arguments_run_as_one_argv_without_reparsing(job: JobHome) -> None:
    run = job.run("printf", "%s|", "a b", "$HOME", "*")

    assert run.returncode == 0
    assert run.stdout == "a b|$HOME|*|"


def test_a_symlinked_artifacts_folder_is_followed(job: JobHome) -> None:
    outside = job.root / "scratch" / "run-1"
    _write(outside / "model.bin", b"weights")
    _write(outside / "logs" / "train.log", b"epoch 1\n")
    job.artifacts.symlink_to(outside)

    run = job.run("true")

    assert run.returncode == 0
    assert job.collected() == {"model.bin": b"weights", "logs/train.log": b"epoch 1\n"}


def test_a_link_inside_the_folder_is_copied_as_the_file_it_points_to(job: JobHome) -> None:
    _write(job.artifacts / "data" / "result.csv", b"a,b\n")
    (job.artifacts / "latest.csv").symlink_to("data/result.csv")
    (job.artifacts / "absolute.csv").symlink_to(job.artifacts / "data" / "result.csv")
    (job.artifacts / "alias").symlink_to("data")

    job.run("true")

    collected = job.collected()
    assert collected == {
        "data/result.csv": b"a,b\n",
        "latest.csv": b"a,b\n",
        "absolute.csv": b"a,b\n",
        "alias/result.csv": b"a,b\n",
    }
    assert not any(path.is_symlink() for path in job.job_folder.rglob("*"))


def test_links_that_escape_the_folder_are_skipped_with_a_log_line(job: JobHome) -> None:
    secret = _write(job.root / "secret.txt", b"do not copy")
    _write(job.artifacts / "kept.txt")
    (job.artifacts / "escape.txt").symlink_to(secret)
    (job.artifacts / "relative-escape.txt").symlink_to("../../secret.txt")
    (job.artifacts / "outside-dir").symlink_to(job.root)

    run = job.run("true")

    assert job.collected() == {"kept.txt": b"x"}
    for name in ("escape.txt", "relative-escape.txt", "outside-dir"):
        assert f"artifacts: skipped link {name}: it points outside the artifacts folder, to " in (
            "\n".join(run.decisions)
        )
    assert run.returncode == 0


def test_link_loops_are_skipped_with_a_log_line(job: JobHome) -> None:
    _write(job.artifacts / "sub" / "kept.txt")
    (job.artifacts / "self").symlink_to("self")
    (job.artifacts / "ping").symlink_to("pong")
    (job.artifacts / "pong").symlink_to("ping")
    (job.artifacts / "sub" / "up").symlink_to("..")
    (job.artifacts / "sub" / "here").symlink_to(".")

    run = job.run("true")

    assert job.collected() == {"sub/kept.txt": b"x"}
    decisions = run.decisions
    for name in ("self", "ping", "pong"):
        assert f"artifacts: skipped link {name}: it loops" in decisions
    for name in ("sub/up", "sub/here"):
        assert f"artifacts: skipped link {name}: it loops back to a folder that contains it" in (
            decisions
        )


def test_a_broken_link_inside_is_skipped_with_a_log_line(job: JobHome) -> None:
    _write(job.artifacts / "kept.txt")
    (job.artifacts / "gone.txt").symlink_to("nowhere.txt")

    run = job.run("true")

    assert job.collected() == {"kept.txt": b"x"}
    assert "artifacts: skipped link gone.txt: what it points to does not exist" in run.decisions


def test_hidden_files_are_included(job: JobHome) -> None:
    run = job.run(
        "mkdir -p artifacts/.cache/deep; echo a > artifacts/.env; echo b > artifacts/.cache/deep/.x"
    )

    assert job.collected() == {".env": b"a\n", ".cache/deep/.x": b"b\n"}
    assert run.returncode == 0


ODD_NAMES = [
    "with space.txt",
    "  leading and trailing  ",
    "-leading-dash",
    "--",
    "ünïcødé-日本語-🎉.txt",
    "new\nline",
    "tab\there",
    'quote"double',
    "quote'single",
    "back\\slash",
    "$(touch pwned)",
    "*",
    "carriage\rreturn",
    "bell\x07and\x1funit",
    "del\x7f",
    "sub dir/with\nnewline/-x",
    "glob[*]?dir/a]b[c/$HOME",
]


def test_odd_names_survive_intact_in_files_and_manifest(job: JobHome) -> None:
    for index, name in enumerate(ODD_NAMES):
        _write(job.artifacts / name, f"content {index}".encode())

    run = job.run("true")

    expected = {name: f"content {i}".encode() for i, name in enumerate(ODD_NAMES)}
    assert job.collected() == expected
    manifest = job.manifest()
    assert {entry.name for entry in manifest.files} == set(ODD_NAMES)
    assert {entry.name: entry.sha256 for entry in manifest.files} == {
        name: hashlib.sha256(content).hexdigest() for name, content in expected.items()
    }
    assert not (job.home / "pwned").exists()
    # One log line per decision even for names with newlines.
    assert run.decisions[-1].startswith(f"artifacts: {len(ODD_NAMES)} files, ")


def test_every_control_character_round_trips_through_the_manifest(job: JobHome) -> None:
    names = [f"c{code:02x}-{chr(code)}-end" for code in range(1, 32)]
    for name in names:
        _write(job.artifacts / name)

    job.run("true")

    assert sorted(entry.name for entry in job.manifest().files) == sorted(names)


def test_names_that_are_not_utf8_are_skipped_with_a_log_line(job: JobHome) -> None:
    _write(job.artifacts / "kept.txt")
    bad = os.fsencode(job.artifacts) + b"/latin1-\xe9t\xe9.txt"
    with open(bad, "wb") as handle:
        handle.write(b"x")

    run = job.run("true")

    assert job.collected() == {"kept.txt": b"x"}
    assert any("it cannot become an object key" in line for line in run.decisions)


def test_metadata_folder_names_are_skipped_at_the_top_only(job: JobHome) -> None:
    _write(job.artifacts / ".primehub" / "metadata" / "expiredAt", b"0")
    _write(job.artifacts / ".metadata" / "expiredAt", b"0")
    _write(job.artifacts / "sub" / ".metadata" / "kept")

    run = job.run("true")

    assert job.collected() == {"sub/.metadata/kept": b"x"}
    assert job.manifest().expired_at != 0
    assert "artifacts: skipped .primehub: the name is reserved for the job's metadata" in (
        run.decisions
    )


@pytest.mark.parametrize(
    ("prepare", "decision"),
    [
        ("true", "artifacts: none: there is no ./artifacts folder"),
        ("mkdir artifacts", "artifacts: none: ./artifacts holds no files"),
        ("mkdir -p artifacts/empty/deeper", "artifacts: none: ./artifacts holds no files"),
        ("echo x > artifacts", "artifacts: not collected: ./artifacts is not a folder"),
        ("ln -s /nonexistent artifacts", "artifacts: none: ./artifacts is a link to /nonexistent"),
    ],
    ids=["missing", "empty", "only-empty-folders", "a-file", "a-broken-link"],
)
def test_nothing_to_collect_writes_nothing_and_keeps_the_exit_code(
    job: JobHome, prepare: str, decision: str
) -> None:
    run = job.run(f"{prepare}; exit 5")

    assert run.returncode == 5
    assert not job.job_folder.exists()
    assert any(line.startswith(decision) for line in run.decisions), run.decisions


def test_exceeding_the_file_limit_copies_nothing_and_says_so(job: JobHome) -> None:
    run = job.run(
        "mkdir -p artifacts/a; for i in 1 2 3; do echo $i > artifacts/a/$i; done; "
        "echo 4 > artifacts/4; echo 5 > artifacts/.5; exit 4",
        env={"PHJOB_ARTIFACT_LIMIT_FILES": "3"},
    )

    line = "artifacts: skipped, 5 files exceed the limit of 3; nothing copied"
    assert run.returncode == 4
    assert line in run.decisions
    assert job.collected() == {}
    manifest = job.manifest()
    assert manifest.skipped and manifest.files == [] and manifest.file_count == 0
    assert manifest.skip_reason is not None
    assert (manifest.skip_reason.limit, manifest.skip_reason.found) == ("files", 5)
    assert (manifest.skip_reason.allowed, manifest.skip_reason.message) == (3, line)
    assert (job.metadata / "expiredAt").exists()


def test_exceeding_the_size_limit_copies_nothing_and_says_so(job: JobHome) -> None:
    _write(job.artifacts / "big.bin", b"\0" * (1024 * 1024))
    _write(job.artifacts / "small.txt", b"one more byte")

    run = job.run("exit 0", env={"PHJOB_ARTIFACT_LIMIT_SIZE_MB": "1"})

    total = 1024 * 1024 + 13
    line = f"artifacts: skipped, {total} B (1.1 MB) exceed the limit of 1 MB; nothing copied"
    assert run.returncode == 0
    assert line in run.decisions
    assert job.collected() == {}
    reason = job.manifest().skip_reason
    assert reason is not None
    assert (reason.limit, reason.found, reason.allowed) == ("size", total, 1024 * 1024)


def test_collections_exactly_at_the_limits_are_copied(job: JobHome) -> None:
    _write(job.artifacts / "a", b"\0" * (1024 * 1024 - 1))
    _write(job.artifacts / "b", b"\0")

    run = job.run(
        "true", env={"PHJOB_ARTIFACT_LIMIT_SIZE_MB": "1", "PHJOB_ARTIFACT_LIMIT_FILES": "2"}
    )

    assert set(job.collected()) == {"a", "b"}
    assert not job.manifest().skipped
    assert run.decisions[-1].startswith("artifacts: 2 files, 1048576 B (1.0 MB) copied to ")


def test_retention_zero_writes_a_manifest_without_expiry(job: JobHome) -> None:
    job.run(SEED_COMMAND, env={"PHJOB_ARTIFACT_RETENTION_SECONDS": "0"})

    assert job.manifest().expired_at is None
    assert not (job.metadata / "expiredAt").exists()
    assert set(job.collected()) == {"test.txt", "sub/test.txt"}


def test_a_custom_retention_sets_the_expiry(job: JobHome) -> None:
    run = job.run(SEED_COMMAND, env={"PHJOB_ARTIFACT_RETENTION_SECONDS": "60"})

    expired_at = parse_expired_at((job.metadata / "expiredAt").read_text())
    assert run.started_at - 2 <= expired_at - 60 <= run.ended_at + 2


def test_collection_disabled_collects_nothing_with_one_line(job: JobHome) -> None:
    run = job.run(SEED_COMMAND + "; exit 2", env={"PHJOB_ARTIFACT_ENABLED": "false"})

    assert run.returncode == 2
    assert not job.job_folder.exists()
    assert [line for line in run.decisions if line.startswith("artifacts: ")] == [
        "artifacts: disabled (PHJOB_ARTIFACT_ENABLED=false); nothing collected"
    ]


def test_bad_limit_values_fall_back_to_the_defaults_with_a_log_line(job: JobHome) -> None:
    run = job.run(
        SEED_COMMAND,
        env={
            "PHJOB_ARTIFACT_LIMIT_FILES": "a[$(touch pwned)]",
            "PHJOB_ARTIFACT_LIMIT_SIZE_MB": "0",
        },
    )

    assert not (job.home / "pwned").exists()
    assert set(job.collected()) == {"test.txt", "sub/test.txt"}
    assert job.manifest().limits.files == 1000
    assert job.manifest().limits.size_mb == 100
    assert (
        "artifacts: PHJOB_ARTIFACT_LIMIT_SIZE_MB='0' is not a whole number from 1 to 10000000; "
        "using 100"
    ) in run.decisions


@pytest.mark.parametrize("name", ["", "..", "../escape", "a/b", " padded"])
def test_a_job_name_that_is_not_a_plain_folder_name_collects_nothing(
    job: JobHome, name: str
) -> None:
    run = job.run(SEED_COMMAND + "; exit 1", env={"PHJOB_NAME": name})

    assert run.returncode == 1
    assert list(job.phfs.iterdir()) == []
    assert not (job.root / "escape").exists()
    assert any("PHJOB_NAME" in line for line in run.decisions)


def test_a_missing_phfs_root_collects_nothing_and_creates_nothing(job: JobHome) -> None:
    missing = job.root / "no-phfs"

    run = job.run(SEED_COMMAND, env={"PHJOB_PHFS_ROOT": str(missing)})

    assert run.returncode == 0
    assert not missing.exists()
    assert f"artifacts: not collected: the PHFS folder {missing} does not exist" in run.decisions


def test_a_retried_collection_replaces_the_files_and_writes_expiry_again(job: JobHome) -> None:
    job.run(SEED_COMMAND)
    (job.metadata / "expiredAt").write_text("1")
    (job.job_folder / "test.txt").chmod(0o444)

    job.run("echo again > artifacts/test.txt")

    assert job.collected()["test.txt"] == b"again\n"
    assert int((job.metadata / "expiredAt").read_text()) > 1


def test_file_modes_are_recorded_as_octal_permission_bits(job: JobHome) -> None:
    _write(job.artifacts / "run.sh").chmod(0o750)
    _write(job.artifacts / "private").chmod(0o600)

    job.run("true")

    assert {entry.name: entry.mode for entry in job.manifest().files} == {
        "run.sh": "750",
        "private": "600",
    }


def test_a_setuid_or_sticky_file_is_recorded_with_its_permission_bits_only(job: JobHome) -> None:
    _write(job.artifacts / "run.sh", b"#!/bin/sh\n").chmod(0o755)
    _write(job.artifacts / "suid.sh", b"#!/bin/sh\n").chmod(0o4755)
    _write(job.artifacts / "sticky").chmod(0o1644)

    job.run("true")

    assert {entry.name: entry.mode for entry in job.manifest().files} == {
        "run.sh": "755",
        "suid.sh": "755",
        "sticky": "644",
    }


def test_sigterm_reaches_the_command_and_what_it_wrote_is_collected(job: JobHome) -> None:
    process = job.start(
        "mkdir -p artifacts; trap 'echo cleaned > artifacts/on-term.txt; exit 143' TERM; "
        "echo partial > artifacts/progress.txt; sleep 30 & wait"
    )

    run = job.signal_when(process, job.artifacts / "progress.txt")

    assert run.returncode == 143
    assert job.collected() == {"progress.txt": b"partial\n", "on-term.txt": b"cleaned\n"}
    assert job.manifest().exit_code == 143
    assert "run-job: forwarding SIGTERM to the command" in run.decisions
    assert run.ended_at - run.started_at < 10


def test_sigterm_reaches_every_process_of_the_command(job: JobHome) -> None:
    # A compound command: bash -c forks `sleep`, which must get the signal too, or the
    # job would wait for it (and leave it running).
    process = job.start("mkdir -p artifacts; echo 1 > artifacts/a; sleep 30; echo 2 > artifacts/b")

    run = job.signal_when(process, job.artifacts / "a")

    assert run.returncode == 143
    assert job.collected() == {"a": b"1\n"}
    assert "run-job: the command ended by signal 15 (exit code 143)" in run.decisions
    assert run.ended_at - run.started_at < 10


def test_sigint_is_forwarded_as_sigint(job: JobHome) -> None:
    process = job.start("mkdir -p artifacts; echo 1 > artifacts/a; sleep 30")

    run = job.signal_when(process, job.artifacts / "a", signal.SIGINT)

    assert run.returncode == 130
    assert job.collected() == {"a": b"1\n"}


def test_a_command_ignoring_sigterm_is_killed_after_the_delay_and_still_collected(
    job: JobHome,
) -> None:
    process = job.start(
        "trap '' TERM; mkdir -p artifacts; echo 1 > artifacts/a; sleep 30",
        env={"PHJOB_KILL_AFTER_SECONDS": "1"},
    )

    run = job.signal_when(process, job.artifacts / "a")

    assert run.returncode == 137
    assert job.collected() == {"a": b"1\n"}
    assert (
        "run-job: the command is still running 1 s after the signal; sending SIGKILL"
        in run.decisions
    )
    assert run.ended_at - run.started_at < 10


def test_no_command_is_a_usage_error(job: JobHome) -> None:
    run = job.run()

    assert run.returncode == 2
    assert "usage: run-job.sh" in run.stderr


# GNU coreutils' programs: the script may use these and bash, nothing else (no find, sed,
# awk, grep, xargs, iconv, python...), because user images vary.
COREUTILS = """
    [ arch b2sum base32 base64 basename basenc cat chcon chgrp chmod chown chroot cksum comm
    cp csplit cut date dd df dir dircolors dirname du echo env expand expr factor false fmt
    fold groups head hostid id install join link ln logname ls md5sum mkdir mkfifo mknod
    mktemp mv nice nl nohup nproc numfmt od paste pathchk pinky pr printenv printf ptx pwd
    readlink realpath rm rmdir runcon seq sha1sum sha224sum sha256sum sha384sum sha512sum
    shred shuf sleep sort split stat stdbuf stty sum sync tac tail tee test timeout touch tr
    true truncate tsort tty uname unexpand uniq unlink users vdir wc who whoami yes
""".split()


@pytest.mark.parametrize("delivery", ["phfs", "s3"])
def test_the_script_needs_only_bash_and_coreutils(job: JobHome, delivery: str) -> None:
    bin_dir = job.root / "bin"
    bin_dir.mkdir()
    for program in ["bash", *COREUTILS]:
        found = shutil.which(program)
        if found:
            (bin_dir / program).symlink_to(found)
    if delivery == "s3":
        job.use_s3_delivery()
    _write(job.artifacts / "odd\nname", b"odd")
    (job.artifacts / "link").symlink_to("odd\nname")
    (job.artifacts / "escape").symlink_to("/")

    run = job.run(SEED_COMMAND + "; exit 3", env={"PATH": str(bin_dir)})

    assert run.returncode == 3
    assert "command not found" not in run.stderr
    if delivery == "phfs":
        assert [entry.name for entry in job.manifest().files] == [
            "link",
            "odd\nname",
            "test.txt",
            "sub/test.txt",
        ]
    else:
        assert (job.staging / "done").exists()
        assert set(tree(job.staging / "files")) == {"link", "odd\nname", "test.txt", "sub/test.txt"}


def test_a_file_still_being_written_is_described_as_copied(job: JobHome) -> None:
    # The command leaves a process behind that keeps appending while the script collects:
    # the manifest must describe the copy that was delivered, not the original.
    job.run(
        "mkdir -p artifacts; "
        "(for i in $(seq 1 40); do echo line >> artifacts/log.txt; sleep 0.01; done) & "
        "sleep 0.05"
    )

    copies = job.collected()
    for entry in job.manifest().files:
        content = copies[entry.name]
        assert (entry.size, entry.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert job.manifest().total_size == sum(len(content) for content in copies.values())


def test_a_file_that_grows_between_the_check_and_the_copy_is_not_kept(job: JobHome) -> None:
    # The race the old script lost 3 times in 3 (a process the command left running keeps
    # appending), made certain: a `cp` that finds the file grown when it starts.
    bin_dir = job.root / "bin"
    bin_dir.mkdir()
    grow_then_copy = bin_dir / "cp"
    grow_then_copy.write_text(
        "#!/bin/bash\n"
        f"head -c {2 * 1024 * 1024} /dev/zero >> {shlex.quote(str(job.artifacts / 'log.bin'))}\n"
        f'exec {shutil.which("cp")} "$@"\n'
    )
    grow_then_copy.chmod(0o755)
    _write(job.artifacts / "log.bin", b"\0" * (512 * 1024))
    _write(job.artifacts / "small.txt")

    run = job.run(
        "exit 7",
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "PHJOB_ARTIFACT_LIMIT_SIZE_MB": "1"},
    )

    assert run.returncode == 7
    assert job.collected() == {}  # nothing kept
    manifest = job.manifest()
    assert manifest.skipped and manifest.files == [] and manifest.exit_code == 7
    reason = manifest.skip_reason
    assert reason is not None
    assert (reason.limit, reason.allowed) == ("size", 1024 * 1024)
    assert reason.found == 512 * 1024 + 2 * 1024 * 1024 + 1  # what the copies held
    assert reason.message in run.decisions
    assert reason.message.endswith("were copied, over the limit of 1 MB; nothing kept")
    assert (job.metadata / "expiredAt").exists()
