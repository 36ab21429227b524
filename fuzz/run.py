"""`make fuzz`: the long fuzz run, split between the targets, with a summary at the end.

    .venv/bin/python fuzz/run.py [--seconds 600] [--only NAME ...]

Targets (their share of the time in brackets):
  atheris-xml     fuzz/fuzz_xml.py, seeded with tests/data/xml/*/*.xml       [2]
  atheris-argv    fuzz/fuzz_argv.py                                          [2]
  hyp-units       tests/reliability/test_fuzz_units.py                      [0.5]
  hyp-xml         tests/reliability/test_fuzz_xml.py                        [1.5]
  hyp-argv        tests/reliability/test_fuzz_argv.py                       [2]
  hyp-lifecycle   tests/reliability/test_lifecycle_stateful.py (real pools) [2]

The Hypothesis targets run pytest with POOLKEEPER_FUZZ=long, which repeats every test with
fresh random data until its share is used up (tests/reliability/conftest.py). Everything
the run writes goes under build/fuzz/: logs, the atheris corpora (kept between runs, so
each run starts where the last one stopped) and crash inputs. The exit status is 1 if any
target found a failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "fuzz"
PYTHON = sys.executable


@dataclass
class Target:
    name: str
    weight: float
    kind: str  # "atheris" or "hypothesis"
    path: str  # harness script or test module, relative to ROOT


TARGETS = [
    Target("atheris-xml", 2, "atheris", "fuzz/fuzz_xml.py"),
    Target("atheris-argv", 2, "atheris", "fuzz/fuzz_argv.py"),
    Target("hyp-units", 0.5, "hypothesis", "tests/reliability/test_fuzz_units.py"),
    Target("hyp-xml", 1.5, "hypothesis", "tests/reliability/test_fuzz_xml.py"),
    Target("hyp-argv", 2, "hypothesis", "tests/reliability/test_fuzz_argv.py"),
    Target("hyp-lifecycle", 2, "hypothesis", "tests/reliability/test_lifecycle_stateful.py"),
]


@dataclass
class Result:
    target: Target
    seconds: float
    count: int  # libFuzzer runs or Hypothesis examples
    ok: bool
    detail: str


def run_atheris(target: Target, seconds: int, log: Path) -> Result:
    corpus = WORK / "corpus" / target.name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = WORK / "crashes"
    crashes.mkdir(parents=True, exist_ok=True)
    if target.name == "atheris-xml":
        for sample in sorted((ROOT / "tests" / "data" / "xml").glob("*/*.xml")):
            seed = corpus / f"seed-{sample.parent.name}-{sample.name}"
            if not seed.exists():
                shutil.copyfile(sample, seed)
    argv = [PYTHON, str(ROOT / target.path), f"-max_total_time={seconds}", "-timeout=60",
            "-rss_limit_mb=4096", "-print_final_stats=1",
            f"-artifact_prefix={crashes}/{target.name}-", str(corpus)]
    if target.name == "atheris-xml":
        argv.insert(2, f"-dict={ROOT / 'fuzz' / 'xml.dict'}")
    started = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.call(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    runs = [int(m) for m in re.findall(r"^Done (\d+) runs", text, re.MULTILINE)]
    if not runs:  # stopped by a crash: the last status line says how far it got
        runs = [int(m) for m in re.findall(r"^#(\d+)\s", text, re.MULTILINE)][-1:]
    crash = re.findall(r"Test unit written to (\S+)", text)
    detail = f"crash input: {crash[-1]}" if crash else f"log: {log.relative_to(ROOT)}"
    return Result(target, time.monotonic() - started, runs[-1] if runs else 0, rc == 0,
                  detail)


def run_hypothesis(target: Target, seconds: int, log: Path) -> Result:
    # pytest's own start (imports, collection) takes a few seconds of the share.
    env = dict(os.environ, POOLKEEPER_FUZZ="long", POOLKEEPER_FUZZ_SECONDS=str(max(5, seconds - 4)))
    argv = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", target.path]
    started = time.monotonic()
    with log.open("w") as out:
        rc = subprocess.call(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    examples = sum(int(m) for m in re.findall(r"^FUZZ \S+: (\d+) examples", text, re.MULTILINE))
    failed = re.findall(r"^FAILED (\S+)", text, re.MULTILINE)
    detail = f"log: {log.relative_to(ROOT)}"
    if failed:
        detail = f"failed: {', '.join(failed)} ({detail})"
    return Result(target, time.monotonic() - started, examples, rc == 0, detail)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int,
                        default=int(os.environ.get("FUZZ_SECONDS", "600")),
                        help="the whole run's time, split between the targets (default 600)")
    parser.add_argument("--only", nargs="+", choices=[t.name for t in TARGETS],
                        help="run only these targets (they share the whole time)")
    args = parser.parse_args()
    targets = [t for t in TARGETS if not args.only or t.name in args.only]
    total_weight = sum(t.weight for t in targets)
    WORK.mkdir(parents=True, exist_ok=True)
    results = []
    for target in targets:
        share = max(10, int(args.seconds * target.weight / total_weight))
        print(f"== {target.name}: {share} s", flush=True)
        log = WORK / f"{target.name}.log"
        run = run_atheris if target.kind == "atheris" else run_hypothesis
        results.append(run(target, share, log))
        print(f"   {'ok' if results[-1].ok else 'FAILED'} ({results[-1].detail})", flush=True)
    print(f"\nfuzz summary ({args.seconds} s asked, {sum(r.seconds for r in results):.0f} s run)")
    print(f"{'target':<16}{'seconds':>9}{'runs/examples':>16}  result")
    for r in results:
        print(f"{r.target.name:<16}{r.seconds:>9.0f}{r.count:>16,}  "
              f"{'ok' if r.ok else 'FAILED: ' + r.detail}")
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
