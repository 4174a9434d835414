"""Profile the worker while the benchmark drains: `python -m bench.profile [bench options]`.

Runs `quota-worker bench` with the given options, and when its quota-worker drain starts
attaches py-spy (the `profile` extra) to the worker's process tree for --seconds, sampling
only threads that hold the interpreter lock (`--gil`: CPU, not waiting). Prints the share
of samples per process role (supervisor with the relay, Celery's consumer, pool
processes) and the heaviest frames of each role, inclusive; keeps py-spy's raw output.
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import psutil

from bench.measure import cpu_seconds

DRAIN_STARTS = "phase 2/6: quota-worker drains"
POOL = "pool processes"
# Frames in at least this share of a role's samples are the framework around all of its
# work (the process's main, Celery's loop): left out of the inclusive list.
AROUND = 0.9
_PROCESS = re.compile(r"^process (\d+):")
# A frame as py-spy prints it: "function (path/to/file.py:line)".
_FRAME = re.compile(r"^(?P<function>.+?) \((?P<file>[^():]+)(?::\d+)?\)$")


def forward(bench: subprocess.Popen[str], preloading: threading.Event) -> None:
    """Print the bench's output and log as they come (a full pipe would stall it); mark the
    drain."""
    assert bench.stdout is not None
    drain = False
    for line in bench.stdout:
        print(line, end="", flush=True)
        drain = drain or DRAIN_STARTS in line
        if drain and "preloading" in line:
            preloading.set()


def wait_for_work(pool: list[psutil.Process], timeout: float = 120.0) -> None:
    """Until the pool processes have taken 0.2 CPU seconds: the preload is done and the
    drain has begun (the consumers are paused while the queues fill)."""
    start, deadline = cpu_seconds(pool), time.monotonic() + timeout
    while cpu_seconds(pool) - start < 0.2 and time.monotonic() < deadline:
        time.sleep(0.1)


def roles(run: psutil.Process) -> dict[int, str]:
    """The worker's processes by role: `worker.cli run`, its Celery consumer, the pool."""
    found = {run.pid: "supervisor (relay, sweep)"}
    for consumer in run.children():
        found[consumer.pid] = "consumer (Celery's main process)"
        for child in consumer.children():
            found[child.pid] = POOL
    return found


def parse(lines: Iterable[str]) -> list[tuple[int, list[str], int]]:
    """py-spy's raw lines ("frame;frame;... count") as (pid, frames root first, count)."""
    samples = []
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # py-spy names each process from the one attached to down to the sampled one.
        pids = [int(m.group(1)) for m in map(_PROCESS.match, frames) if m is not None]
        if not pids:
            continue
        rest = [f for f in frames[len(pids) :] if not f.startswith("thread (")]
        samples.append((pids[-1], [short(f) for f in rest], int(count)))
    return samples


def short(frame: str) -> str:
    match = _FRAME.match(frame)
    if match is None:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", "/work/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('function')} ({path})"


def summarize(
    samples: list[tuple[int, list[str], int]], role_of: dict[int, str], top: int = 15
) -> str:
    """Share per role; per role the heaviest frames inclusive (leaving out the frames of
    nearly every sample, the framework around everything) and by self time."""
    by_role: collections.Counter[str] = collections.Counter()
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    own: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for pid, frames, count in samples:
        role = role_of.get(pid, f"other ({pid})")
        by_role[role] += count
        for frame in set(frames):  # a recursive frame counts once per sample
            inclusive[role][frame] += count
        if frames:
            own[role][frames[-1]] += count
    total = sum(by_role.values()) or 1
    out = [f"{total} samples holding the GIL; share by role:"]
    out += [f"  {n / total:6.1%}  {role}" for role, n in by_role.most_common()]
    for role, n in by_role.most_common():
        heaviest = [(f, c) for f, c in inclusive[role].most_common() if c < AROUND * n][:top]
        out.append(f"\n{role}, inclusive share of its samples (below {AROUND:.0%}):")
        out += [f"  {c / n:6.1%}  {frame}" for frame, c in heaviest]
        out.append(f"{role}, self time:")
        out += [f"  {c / n:6.1%}  {frame}" for frame, c in own[role].most_common(top)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--seconds", type=float, default=12.0, help="sampling time [12]")
    parser.add_argument("--rate", type=int, default=100, help="samples per second [100]")
    parser.add_argument("--raw", type=Path, default=Path("bench/results/profile.raw.txt"),
                        help="where py-spy's raw output goes")  # fmt: skip
    args, bench_args = parser.parse_known_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("py-spy is not installed: pip install -e '.[profile]'", file=sys.stderr)
        return 2
    bench = subprocess.Popen(
        [sys.executable, "-m", "worker.cli", "bench", *bench_args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    preloading = threading.Event()
    forwarder = threading.Thread(target=forward, args=(bench, preloading), daemon=True)
    forwarder.start()
    while not preloading.wait(0.5):
        if bench.poll() is not None:
            return bench.returncode or 1
    run = next(p for p in psutil.Process(bench.pid).children()
               if "worker.cli" in " ".join(p.cmdline()) and "run" in p.cmdline())  # fmt: skip
    role_of = roles(run)
    wait_for_work([psutil.Process(pid) for pid, r in role_of.items() if r == POOL])
    args.raw.parent.mkdir(parents=True, exist_ok=True)
    print(f"[profile] sampling the worker's processes for {args.seconds:.0f} s", flush=True)
    spy_cmd = [spy, "record", "--pid", str(run.pid), "--subprocesses", "--gil", "--rate",
               str(args.rate), "--format", "raw", "--duration", str(int(args.seconds)),
               "--output", str(args.raw), "--nonblocking"]  # fmt: skip
    spy_log = args.raw.with_suffix(".log")
    with spy_log.open("w") as log:
        spied = subprocess.run(spy_cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    code = bench.wait()
    forwarder.join(10)
    if not args.raw.exists():
        print(f"py-spy wrote nothing (exit {spied.returncode}): {spy_log.read_text()}")
        return 1
    print("\n" + summarize(parse(args.raw.read_text().splitlines()), role_of))
    return code


if __name__ == "__main__":
    raise SystemExit(main())
