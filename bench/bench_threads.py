"""Why the foreground DAG (``ganaug run EXPERIMENT``, ``ganaug demo``) adapts torch's threads to the machine's load
(``engine.runner.dag.ThreadShare``): ms per training step of a StyleGAN2 ``demo`` step and a ``test_resnet`` 48 px
classifier step (batch 32), with 1 thread and with every core, on a quiet machine and while another process keeps
one core busy (the bench starts that process itself). Each figure comes from a fresh process, side by side.

    python bench/bench_threads.py [--device cpu] [--steps 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_STEP = """
import sys, time, torch
sys.path.insert(0, {root!r})
threads, what, steps = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.set_num_threads(threads)
torch.set_flush_denormal(True)
if what == "stylegan2":
    from engine.gans import GanBatch, create_gan
    g = create_gan("stylegan2", "demo", "cpu")
    gen = torch.Generator().manual_seed(0)
    batch = GanBatch(torch.rand(16, 3, 64, 64) * 2 - 1, torch.randint(0, 2, (16,)), None)
    step = lambda: g.train_step(batch, gen)
else:
    import timm
    m = timm.create_model("test_resnet", pretrained=False, num_classes=2)
    opt = torch.optim.SGD(m.parameters(), lr=0.01)
    x, y = torch.rand(32, 3, 48, 48), torch.randint(0, 2, (32,))
    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()
for _ in range(3):
    step()
t = time.perf_counter()
for _ in range(steps):
    step()
print((time.perf_counter() - t) / steps * 1000)
"""


def measure(threads: int, what: str, steps: int) -> float:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", _STEP.format(root=str(ROOT)), str(threads), what, str(steps)],
                         capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", help="only cpu: this measures CPU threads")
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    if args.device != "cpu":
        print("bench_threads measures CPU threads; on a GPU the model does not run on them")
        return
    cores = len(os.sched_getaffinity(0))
    print(f"ms per training step, {cores} cores, load average before: {os.getloadavg()[0]:.1f}")
    print(f"{'step':<10} {'machine':<14} {'1 thread':>9} {f'{cores} threads':>10}")
    for busy in (False, True):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(0.5 if busy else 0)
            for what in ("stylegan2", "classifier"):
                one, all_ = measure(1, what, args.steps), measure(cores, what, args.steps)
                print(f"{what:<10} {'one core busy' if busy else 'quiet':<14} {one:>9.0f} {all_:>10.0f}")
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()


if __name__ == "__main__":
    main()
