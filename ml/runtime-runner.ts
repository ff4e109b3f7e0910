// The timing side of a deployment runtime, ONE piece of code for every runtime: it runs in a child
// Node process (tfjs-wasm, tfjs-node: ml/runtime-child.ts) and, as its own source text, in a page of
// headless Chromium (chromium-wasm, chromium-webgl: ml/runtime.ts serves `createRunner.toString()`).
// It only times; the estimator (ml/speedup.ts, interleaved pairs until the CI or the budget) stays
// in the measuring process and asks for one pair at a time. So it must stay self-contained: no
// imports, no helpers from outside this function, nothing Node- or browser-specific.

/** What a runner does for the measuring process. Times are ms of the runtime's own clock. */
export interface Runner {
  /** `n` untimed forward passes of each model (baseline first) */
  warmup(n: number): Promise<void>;
  /** one pair, [baseline ms, candidate ms]; the order flips every pair (ABBA): even i baseline first */
  pair(i: number): Promise<[number, number]>;
  /** `n` timed forward passes of the baseline alone (its median is the campaign's baseline latency) */
  times(n: number): Promise<number[]>;
  /** frees the inputs (the caller owns the models) */
  dispose(): void;
}

/**
 * A runner over `tf` (whichever tfjs the runtime has: the Node package or the UMD bundle's global)
 * for a baseline and an optional candidate, at `batchSize`, on fixed random inputs. A forward pass
 * is stock `model.predict` on the whole batch, finished by reading the output back.
 */
export function createRunner(tf: any, baseline: any, candidate: any, batchSize: number): Runner {
  const inputOf = (m: any) => tf.randomUniform([batchSize, ...m.inputs[0].shape.slice(1).map((d: number | null) => (d === null ? 1 : d))], 0, 1, 'float32', 7);
  const xb = inputOf(baseline);
  const xc = candidate ? inputOf(candidate) : undefined;
  const once = async (m: any, x: any): Promise<number> => {
    const t0 = performance.now();
    const y = tf.tidy(() => m.predict(x, { batchSize }));
    await y.data(); // the computation is finished when its output is read back (async backends)
    const dt = performance.now() - t0;
    y.dispose();
    return dt;
  };
  return {
    async warmup(n: number) {
      for (let i = 0; i < n; i++) {
        await once(baseline, xb);
        if (candidate) await once(candidate, xc);
      }
    },
    async pair(i: number): Promise<[number, number]> {
      if (!candidate) throw new Error('runner: no candidate model to pair with the baseline');
      if (i % 2 === 0) {
        const b = await once(baseline, xb);
        return [b, await once(candidate, xc)];
      }
      const c = await once(candidate, xc);
      return [await once(baseline, xb), c];
    },
    async times(n: number) {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push(await once(baseline, xb));
      return out;
    },
    dispose() {
      xb.dispose();
      if (xc) xc.dispose();
    },
  };
}
