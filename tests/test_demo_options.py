"""`clickintent demo` takes the LLM options (issue 21) and hands them to every LLM step, never a key's value."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from clickintent.cli import main
from clickintent.cli.demo import demo_steps


def test_openai_needs_a_url_and_a_model(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "out"), "--llm", "openai"])
    assert result.exit_code == 2 and "--llm-base-url and --llm-model" in result.output
    assert not (tmp_path / "out").exists(), "nothing is written before the options are checked"


def test_the_llm_options_reach_every_llm_step() -> None:
    backend = ["--llm", "openai", "--llm-base-url", "http://127.0.0.1:8000/v1", "--llm-model", "m",
               "--llm-endpoint", "chat", "--llm-api-key-env", "MY_KEY"]  # fmt: skip
    steps = demo_steps(Path("out"), visitors=100, days=7, seed=0, signal=0.5, train_minutes=1, label_sample=50,
                       compare_sample=50, llm_threads=1, max_labels=4, bootstrap=20, llm_backend=backend)  # fmt: skip
    llm_steps = [args for _, args, _ in steps if args[0] == "taxonomy"]
    assert len(llm_steps) == 3 and all(" ".join(backend) in " ".join(args) for args in llm_steps)
    others = [args for _, args, _ in steps if args[0] != "taxonomy"]
    assert not any(a in ("--llm", "--llm-base-url", "--llm-model") for args in others for a in args)


def test_no_cli_module_imports_the_cli_package_back() -> None:
    """clickintent.cli imports every command module; none may import clickintent.cli (the demo once did, inside
    a function, to run its steps: an import cycle). Function-level imports count."""
    import ast

    import clickintent.cli as cli

    for path in Path(cli.__file__).parent.glob("*.py"):
        if path.name == "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert "clickintent.cli" not in names, f"{path.name} imports clickintent.cli"
