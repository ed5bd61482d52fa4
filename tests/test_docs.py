"""The documentation works as written: README.md and docs/*.md.

* every relative link resolves (the file, and the `#anchor` in a Markdown target, as GitHub slugs headings);
* every `python src/train.py ...` command composes with Hydra and validates (`acai.training.spec.RunSpec.from_config`);
* no machine path (/work/..., /root/..., /home/...) appears;
* docs/extending.md's files, written to tmp_path outside src/acai, train as its command says, and the
  Python snippets that load a logged model work from another folder.

Rules for the commands (in fenced blocks and in inline code): `-m` is dropped and a comma sweep is split
into single values (each value composed once, the other sweeps at their first value); a trailing `...`
is dropped; a `<placeholder>` value is a real temp folder (`dataset.path=<svhn folder>`), except as a
group's choice (`dataset=<d>`), which composes with every YAML of that group; commands that add config
folders (`hydra.searchpath=...`, `--config-dir`) are the extending guide's, run for real by
`test_the_extending_guide_works_as_written`; commands naming the submitit launchers are skipped when
hydra-submitit-launcher (the `cluster` extra) is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CONF, ROOT, compose_in

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TRAIN = "python src/train.py"
FENCE = re.compile(r"^\s*(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"`[^`\n]+`")
MACHINE_PATH = re.compile(r"/(?:work|root|Users)/|/home/[A-Za-z]")
PLACEHOLDER = re.compile(r"<[^<>]+>")
try:
    SUBMITIT = importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is not None
except ModuleNotFoundError:  # no hydra_plugins package at all
    SUBMITIT = False


# ---- reading Markdown ----

def prose_and_code(text: str) -> tuple[list[str], list[str]]:
    """The lines outside fenced code blocks, and those inside (with `\\` continuations joined)."""
    prose, code, fenced, pending = [], [], False, ""
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            prose.append(line)
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        code.append(pending + line)
        pending = ""
    return prose, code


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link in a heading: its text
    text = re.sub(r"[`*]", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: dict[str, int] = {}
    result = set()
    for line in prose_and_code(path.read_text())[0]:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = found.get(base, 0)
            found[base] = n + 1
            result.add(base if n == 0 else f"{base}-{n}")
    return result


def broken_links(path: Path) -> list[str]:
    """Every relative link of a Markdown file whose file or #anchor does not exist."""
    broken = []
    for line in prose_and_code(path.read_text())[0]:
        for target in LINK.findall(INLINE_CODE.sub("", line)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not checked offline
                continue
            file_part, _, anchor = target.partition("#")
            resolved = (path.parent / file_part).resolve() if file_part else path
            if not resolved.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{path.name}: {target} (no heading #{anchor} in {resolved.name})")
    return broken


def train_commands(path: Path) -> list[str]:
    """The arguments of every `python src/train.py` command, in code blocks and inline code."""
    prose, code = prose_and_code(path.read_text())
    lines = code + [span.strip("`") for line in prose for span in INLINE_CODE.findall(line)]
    return [line.split(TRAIN, 1)[1] for line in lines if TRAIN in line]


# ---- checking a command ----

def split_sweep(value: str) -> list[str]:
    """`a,b,c` -> its values; a bracketed list (`[256]`, `[file://...]`) is one value."""
    return [value] if value.startswith("[") else value.split(",")


def group_choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def variants(args: str, folder: Path) -> list[list[str]] | None:
    """The single-value override lists a documented command stands for; None: skipped by a stated rule."""
    tokens = [t for t in shlex.split(PLACEHOLDER.sub(lambda m: m.group(0).replace(" ", "_"), args), comments=True)
              if t not in ("-m", "--multirun", "...")]
    if any(t.startswith(("hydra.searchpath", "--config-dir", "-cd")) for t in tokens):
        return None
    if not SUBMITIT and any(re.match(r"hydra/launcher=(slurm|submitit)", t) for t in tokens):
        return None
    options: list[list[str]] = []
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq:
            options.append([token])
            continue
        if PLACEHOLDER.search(value):
            if "." not in key.lstrip("+") and (CONF / key).is_dir():
                options.append([f"{key}={choice}" for choice in group_choices(key)])
                continue
            value = PLACEHOLDER.sub(str(folder), value)
        options.append([f"{key}={v}" for v in split_sweep(value)])
    firsts = [o[0] for o in options]
    out = [firsts]
    for i, values in enumerate(options):
        out += [firsts[:i] + [v] + firsts[i + 1:] for v in values[1:]]
    return out


def command_errors(path: Path, folder: Path) -> list[str]:
    """Every documented command of `path` that does not compose and validate, with the reason."""
    from acai.training.spec import RunSpec

    errors = []
    for args in train_commands(path):
        for overrides in variants(args, folder) or []:
            try:
                RunSpec.from_config(compose_in(folder, *overrides))
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                errors.append(f"{path.name}: {TRAIN} {' '.join(overrides)}: {type(e).__name__}: {e}")
    return errors


# ---- the documentation as it is ----

def test_the_docs_exist_and_the_front_page_is_short():
    names = {p.name for p in DOCS}
    for page in ("README.md", "usage.md", "datasets.md", "scaling-out.md", "results.md", "performance.md",
                 "deviations.md", "reliability.md", "errors.md", "serving.md", "extending.md"):
        assert page in names
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    for command in ('pip install -e ".[dev]"', "python src/train.py", "pytest"):
        assert f"\n{command} " in readme, command


@pytest.mark.parametrize("page", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


@pytest.mark.parametrize("page", DOCS, ids=[p.relative_to(ROOT).as_posix() for p in DOCS])
def test_no_machine_path(page):
    assert [line for line in page.read_text().splitlines() if MACHINE_PATH.search(line)] == []


def test_every_documented_train_command_composes(tmp_path):
    checked = sum(len(variants(a, tmp_path) or []) for p in DOCS for a in train_commands(p))
    assert checked > 40  # the checker finds the commands (README, usage, results, scaling-out, ...)
    errors = [e for page in DOCS for e in command_errors(page, tmp_path)]
    assert errors == []


# ---- the checkers catch what they are for ----

def test_the_link_checker_catches_a_missing_file_and_a_missing_anchor(tmp_path):
    (tmp_path / "other.md").write_text("# A heading: with `code`\n\n## Twice\n\n## Twice\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](other.md#a-heading-with-code) [ok](other.md#twice-1) [ok](#mine)\n"
                    "[gone](nothing.md) [bad anchor](other.md#no-such-heading)\n"
                    "`[not a link](inside-code.md)`\n```\n[in a block](block.md)\n```\n# Mine\n")
    assert broken_links(page) == ["page.md: nothing.md (no such file)",
                                  "page.md: other.md#no-such-heading (no heading #no-such-heading in other.md)"]


def test_the_command_checker_catches_a_misspelt_key_and_a_bad_value(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```bash\npython src/train.py -m trainer.batchsize=32 seed=0,1   # a misspelt key\n```\n"
                    "Run `python src/train.py model.latent_dim=50` or `python src/train.py regularizer=none,vea`.\n"
                    "```bash\npython src/train.py experiment=svhn_cpu dataset.path=<svhn folder> \\\n"
                    "    regularizer=none,acai ...\n```\n")
    assert [v for a in train_commands(page) for v in variants(a, tmp_path)] == [
        ["trainer.batchsize=32", "seed=0"], ["trainer.batchsize=32", "seed=1"],
        ["experiment=svhn_cpu", f"dataset.path={tmp_path}", "regularizer=none"],
        ["experiment=svhn_cpu", f"dataset.path={tmp_path}", "regularizer=acai"],
        ["model.latent_dim=50"],
        ["regularizer=none"], ["regularizer=vea"]]
    errors = command_errors(page, tmp_path)
    assert len(errors) == 4, errors
    assert "trainer.batchsize" in errors[0] and "seed=1" in errors[1]
    assert "model.latent_dim=50" in errors[2] and "regularizer=vea" in errors[3]


def test_the_machine_path_check_catches_one(tmp_path):
    assert MACHINE_PATH.search("  store      sqlite:////work/main/mlflow.db")
    assert MACHINE_PATH.search("cd /root/acai") and MACHINE_PATH.search("/home/me/acai")
    assert not MACHINE_PATH.search("sqlite:///<repo>/mlflow.db  /usr/share/datasets/fashion-mnist")


# ---- the extending guide, done as it says ----

def guide_files(text: str) -> dict[str, str]:
    """The files docs/extending.md gives: each fenced block under an `<!-- file: path -->` comment."""
    return {m.group(1): m.group(2) for m in re.finditer(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", text, re.S)}


@pytest.mark.slow
def test_the_extending_guide_works_as_written(tmp_path):
    from mlflow.tracking import MlflowClient

    guide = (ROOT / "docs" / "extending.md").read_text()
    files = guide_files(guide)
    assert set(files) == {"my_acai/latent_penalty.py", "my_acai/stripes.py", "my_acai/latent_scale.py",
                          "my_conf/regularizer/latent_penalty.yaml", "my_conf/dataset/stripes.yaml"}
    project = tmp_path / "my_project"
    (project / "my_acai").mkdir(parents=True)
    (project / "my_acai" / "__init__.py").write_text("")
    for name, body in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(body)
        lines = len(body.splitlines())
        assert re.search(rf"{re.escape(Path(name).name)}\s.*\b{lines} lines", guide), f"{name}: {lines} lines"
    assert not str(project).startswith(str(ROOT / "src"))

    (command,) = [line for line in guide.splitlines() if TRAIN in line and "hydra.searchpath" in line]
    argv = shlex.split(command.replace("<my project>", str(project)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    while "=" in argv[0]:  # the guide's environment: PYTHONPATH=<my project>; this checkout's acai after it
        key, _, value = argv.pop(0).partition("=")
        env[key] = value
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(ROOT / "src")])
    assert argv[:2] == ["python", "src/train.py"]
    store = tmp_path / "mlflow.db"
    done = subprocess.run([sys.executable, str(ROOT / "src" / "train.py"), *argv[2:],
                           f"tracking.uri=sqlite:///{store}", f"tracking.artifact_location={tmp_path}/mlruns",
                           f"trainer.checkpoint_dir={tmp_path}/ckpt"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("smoke").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name.startswith("latent_penalty-stripes-")
    assert run.data.params["regularizer.weight"] == "0.01" and run.data.params["dataset.num_classes"] == "8"
    history = client.get_metric_history(run.info.run_id, "train/latent_square")
    assert history and all(m.value >= 0 for m in history)
    assert "eval/reconstruction_error" in run.data.metrics
    scale = client.get_metric_history(run.info.run_id, "eval/latent_scale")  # the guide's metric, every evaluation
    assert len(scale) == 2 and all(m.value > 0 for m in scale) and run.data.metrics["final/latent_scale"] > 0
    assert run.data.params["evaluation.metrics"] == "['my_acai.latent_scale.LATENT_SCALE']"
    assert re.search(r"^final  recon=\S+ scale=\d+\.\d\d ", done.stdout, re.M), done.stdout[-2000:]  # after recon

    # the pages' Python snippets that load this run's models, from a folder that is not the store's
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for page, setup, check in (
        ("usage.md", "import numpy as np\nimages = np.zeros((2, 32, 32, 1), np.float32)\n",
         "\nassert tuple(codes.shape) == (2, 4, 4, 2), codes.shape\n"),
        ("serving.md", "", "\nassert frames.shape == (1, 11, 32, 32, 1) and frames.dtype.name == 'uint8'\n"),
    ):
        text = (ROOT / "docs" / page).read_text()
        (snippet,) = [s for s in re.findall(r"```python\n(.*?)```", text, re.S) if "set_tracking_uri" in s]
        code = setup + snippet.replace("<repo>", str(tmp_path)).replace("<run id>", run.info.run_id) + check
        clean = {k: v for k, v in env.items() if k != "MLFLOW_TRACKING_URI"}
        ran = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=clean, capture_output=True, text=True,
                             timeout=300)
        assert ran.returncode == 0, f"{page}: {ran.stderr[-3000:]}"
    assert list(elsewhere.iterdir()) == []  # no stray mlflow.db where the snippet ran


def test_line_counts_the_docs_give_for_source_files_are_current():
    """'`src/acai/data/base.py`, 125 lines' or '`src/...py` (120 lines)': the guide's sizes stay true."""
    stale = []
    for page in DOCS:
        for path, count in re.findall(r"`(src/[\w/]+\.py)`(?:,| \() ?(\d+) lines", page.read_text()):
            actual = len((ROOT / path).read_text().splitlines())
            if actual != int(count):
                stale.append(f"{page.name}: {path} is {actual} lines, the page says {count}")
    assert stale == []
