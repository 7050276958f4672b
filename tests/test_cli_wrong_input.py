"""Every subcommand on wrong input, as a user runs it (a subprocess): exit 1 (bad input) or 2 (usage), one
line saying what is wrong and what to do, never a traceback, and nothing half-written (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from clickintent.ingest import IngestOptions, ingest
from clickintent.sessionize import sessionize

pytestmark = pytest.mark.integration  # about 30 short `clickintent` processes

CSV = "visitor_id,ts,url\n" + "".join(f"v{i % 3},2025-03-01T09:{i:02d}:00Z,https://b.example/p{i}\n" for i in range(20))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, bundles: dict[str, Path]) -> dict[str, Path]:
    """One of each kind of file a user might hand to the wrong step."""
    d = tmp_path_factory.mktemp("wrong-input")
    (d / "good.csv").write_text(CSV + "v9,never,/x\n")  # one row quarantined
    ingest(d / "good.csv", d / "run", IngestOptions())
    sessionize(d / "run", d / "run" / "sessions.parquet")
    sessions = pq.read_table(d / "run" / "sessions.parquet")
    pq.write_table(sessions.slice(0, 0), d / "no-sessions.parquet")
    pq.write_table(pq.read_table(d / "run" / "events.parquet").slice(0, 0), d / "no-events.parquet")
    (d / "empty.csv").write_bytes(b"")
    (d / "header-only.csv").write_text("visitor_id,ts,url\n")
    (d / "bad-times.csv").write_text("visitor_id,ts,url\n" + "".join(f"v{i},yesterday {i},/p\n" for i in range(9)))
    (d / "semicolons.csv").write_text("visitor_id;ts;url\nv1;2025-03-01T09:00:00Z;/p\n")
    (d / "random.parquet").write_bytes(os.urandom(4096))
    (d / "empty.parquet").write_bytes(b"")
    (d / "not-a-taxonomy.json").write_text('{"labels": 3}')
    (d / "a-file").write_text("x")
    for name in ("empty-dir", "not-a-bundle"):
        (d / name).mkdir()
    return {p.name: p for p in d.iterdir()} | {"run": d / "run", "missing": d / "no-such-file", "bundle": bundles["a"]}


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "clickintent", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


# (subcommand and arguments, with {name} for a file of `files`; exit status; words the error line must hold)
CASES = [
    ("ingest {empty.csv} --out {OUT}", 1, "is empty"),
    ("ingest {header-only.csv} --out {OUT}", 1, "holds no rows"),
    ("ingest {bad-times.csv} --out {OUT}", 1, "no row was kept"),
    ("ingest {semicolons.csv} --delimiter , --out {OUT}", 1, "--delimiter ';'"),
    ("ingest {random.parquet} --out {OUT}", 1, "not a readable Parquet file"),
    ("ingest {empty.parquet} --out {OUT}", 1, "is empty"),
    ("ingest {good.csv} --out {a-file}", 2, "is a file"),
    ("ingest {missing} --out {OUT}", 2, "does not exist"),
    ("sessionize {run}/quarantine.parquet --out {OUT}/s.parquet", 1, "quarantine of refused rows"),
    ("sessionize {run}/sessions.parquet --out {OUT}/s.parquet", 1, "is not events: it is sessions"),
    ("sessionize {good.csv} --out {OUT}/s.parquet", 1, "run clickintent ingest"),
    ("sessionize {no-events.parquet} --out {OUT}/s.parquet", 1, "holds no events"),
    ("sessionize {empty-dir} --out {OUT}/s.parquet", 1, "folder without events.parquet"),
    ("sessionize {missing} --out {OUT}/s.parquet", 1, "does not exist"),
    ("train {run}/events.parquet --out {OUT}/bundle", 1, "is not sessions"),
    ("train {no-sessions.parquet} --out {OUT}/bundle", 1, "holds no sessions"),
    ("embed {run}/events.parquet --bundle {empty-dir} --out {OUT}/e.parquet", 1, "is not sessions"),
    ("taxonomy build {no-sessions.parquet} --out {OUT}/t.json", 1, "holds no sessions"),
    ("taxonomy build {run}/events.parquet --out {OUT}/t.json", 1, "is not sessions"),
    ("taxonomy build {run} --embeddings {run}/events.parquet --out {OUT}/t.json", 1, "is not embeddings"),
    ("taxonomy label {run} --taxonomy {missing} --out {OUT}/l.parquet", 1, "taxonomy build"),
    ("taxonomy label {run} --taxonomy {not-a-taxonomy.json} --out {OUT}/l.parquet", 1, "not a valid taxonomy"),
    ("cut {run}/events.parquet --out {OUT}/v.parquet", 1, "is not sessions"),
    ("cut {no-sessions.parquet} --out {OUT}/v.parquet", 1, "holds no sessions"),
    ("distill --embeddings {run}/sessions.parquet --labels {run}/sessions.parquet --taxonomy {not-a-taxonomy.json}"
     " --sessions {run} --bundle {empty-dir}", 1, "is not embeddings"),
    ("label {run}/events.parquet --bundle {empty-dir} --out {OUT}/l.parquet", 1, "is not sessions"),
    ("embed {run}/sessions.parquet --bundle {bundle} --out {empty-dir}", 1, "is a folder"),  # before the work
    ("label {run}/sessions.parquet --bundle {bundle} --out {empty-dir}", 1, "is a folder"),
    ("evaluate {run}/quarantine.parquet --out {OUT}/e.json", 1, "quarantine of refused rows"),
    ("evaluate {no-sessions.parquet} --out {OUT}/e.json", 1, "holds no sessions"),
    ("report {empty-dir} --out {OUT}/r.html", 1, "holds no clickintent outputs"),
    ("serve --bundle {missing}", 2, "does not exist"),
    ("serve --bundle {not-a-bundle}", 1, "not a clickintent bundle"),
    ("simulate --config no-such-world --out {OUT}", 1, "no-such-world"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "status", "says"), CASES, ids=[c[0].split(" {")[0] + ":" + c[2] for c in CASES])
def test_wrong_input_gets_one_line_and_leaves_nothing(
    files: dict[str, Path], tmp_path: Path, command: str, status: int, says: str
) -> None:
    out = tmp_path / "out"
    before = sorted(p for p in files["run"].parent.rglob("*"))
    result = run([_fill(a, files, out) for a in command.split()], tmp_path)
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output, output
    assert result.returncode == status, output
    errors = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, output
    assert says in errors[0], output
    assert "unexpected" not in errors[0], output  # a known wrong input, not the catch-all for bugs
    if status == 1:
        assert output == errors[0], "bad input is answered in one line and nothing else"
    left = {p.name for p in out.rglob("*")} if out.exists() else set()
    if says == "no row was kept":  # the evidence, complete: every row with its reason, and the report
        assert left == {"quarantine.parquet", "ingest_report.json"}
        assert pq.read_table(out / "quarantine.parquet").num_rows == 9
    else:
        assert not left, f"{command} left {sorted(left)}"
    assert sorted(p for p in files["run"].parent.rglob("*")) == before  # no input folder was written to


def _fill(arg: str, files: dict[str, Path], out: Path) -> str:
    for name, path in files.items():
        arg = arg.replace("{" + name + "}", str(path))
    return arg.replace("{OUT}", str(out))


def test_a_step_reads_the_folder_its_step_before_wrote(files: dict[str, Path], tmp_path: Path) -> None:
    """`sessionize DIR`, where DIR is what `ingest --out DIR` wrote (with its quarantine.parquet beside)."""
    result = run(["sessionize", str(files["run"]), "--out", str(tmp_path / "s.parquet")], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert pq.read_table(tmp_path / "s.parquet").num_rows == pq.read_table(files["run"] / "sessions.parquet").num_rows


def test_a_bug_is_one_line_too_and_verbose_shows_the_traceback(tmp_path: Path) -> None:
    """The catch-all: an unexpected exception is reported in one line, its traceback only under -v."""
    code = (
        "import sys, click; from clickintent.cli import main\n"
        "@main.command('boom')\n"
        "def boom() -> None:\n"
        "    raise KeyError('x')\n"
        "main(sys.argv[1:])\n"
    )
    quiet = subprocess.run([sys.executable, "-c", code, "boom"], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 1 and "Traceback" not in quiet.stderr
    assert quiet.stderr.strip().startswith("Error: unexpected KeyError") and len(quiet.stderr.strip().splitlines()) == 1
    loud = subprocess.run([sys.executable, "-c", code, "-v", "boom"], capture_output=True, text=True, timeout=120)
    assert loud.returncode == 1 and "Traceback" in loud.stderr
