#!/usr/bin/env python3
"""Times TFLite files side by side, to split a campaign's speedup into pruning and int8.

  .venv/bin/python examples/keras-fashion/time_tflite.py A.tflite B.tflite … [--batch 32] [--threads 1] [--rounds 300]

Each file is opened with tf.lite.Interpreter (XNNPACK applied, TFLite's default CPU delegate; the
same loader prunewise's `target.runtime: tflite` uses: ml/py/deploy.py `Tflite`), resized to a batch
of the first --batch Fashion-MNIST test images (scaled to [0, 1], quantized for int8 inputs), warmed
up, then invoked in interleaved rounds (one invoke of every file per round, so load on a shared
machine hits all files alike). Prints per file: median ms per batch, the 10th–90th percentile
range, and the median's ratio to the first file's median. Measured, on this machine, at the time.
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "ml", "py"))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    p = argparse.ArgumentParser(description="time TFLite files in interleaved rounds (XNNPACK)")
    p.add_argument("files", nargs="+")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=300)
    p.add_argument("--warmup", type=int, default=10)
    a = p.parse_args()
    from deploy import Tflite  # noqa: E402
    from build import read_idx  # noqa: E402

    x = (read_idx("t10k-images-idx3-ubyte.gz")[: a.batch].astype("float32") / 255.0)[..., None]
    nets = []
    for f in a.files:
        t = Tflite(f, a.threads)
        xq = t.prepare(x)
        t.resize(len(xq))
        nets.append((f, t, xq, t.delegated()))
        for _ in range(a.warmup):
            t.run(xq)
    times = [[] for _ in nets]
    for _ in range(a.rounds):
        for i, (_, t, xq, _) in enumerate(nets):
            t0 = time.perf_counter()
            t.run(xq)
            times[i].append((time.perf_counter() - t0) * 1000)
    base = statistics.median(times[0])
    print("batch %d, %d thread(s), %d interleaved rounds, tf.lite.Interpreter (TensorFlow %s)" % (a.batch, a.threads, a.rounds, __import__("tensorflow").__version__))
    for (f, _, _, deleg), ts in zip(nets, times):
        q = statistics.quantiles(ts, n=10)
        m = statistics.median(ts)
        print("%-60s median %7.3f ms  p10–p90 %7.3f–%7.3f ms  %5.2f× vs first  XNNPACK %s" % (f, m, q[0], q[-1], base / m, deleg))


if __name__ == "__main__":
    main()
