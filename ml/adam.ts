// Adam with its update fused into one JS loop per variable. tf.train.adam runs ~10 small kernels per variable per step (for
// LeNet-5 ~100 kernel calls, ~15 % of a training step at batch 32); this does the same arithmetic
// in one pass. Same formulas and defaults as tf.train.adam (checked against it in test/ml.test.ts).
import * as tf from '@tensorflow/tfjs-core';

/** Overwrites a variable's values. */
export function setValues(v: tf.Variable, values: Float32Array): void {
  tf.tidy(() => v.assign(tf.tensor(values, v.shape)));
}

/** One shard's gradients (one array per variable, in order) and its weight in the mean. */
export interface GradientShard {
  grads: Float32Array[];
  weight: number;
}

/** Adam's whole state: the step count and both moments (one array per variable, in order). */
export interface AdamState {
  t: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class FusedAdam {
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;
  constructor(
    private readonly vars: tf.Variable[],
    /** the rate of the next apply() (a schedule sets it per step: ml/recipe.ts learningRateAt) */
    public learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    this.m = vars.map((x) => new Float32Array(x.size));
    this.v = vars.map((x) => new Float32Array(x.size));
  }

  /** A copy of the step count and moments (for a checkpoint). */
  state(): AdamState {
    return { t: this.t, m: this.m.map((a) => a.slice()), v: this.v.map((a) => a.slice()) };
  }

  /** Continues from a saved state (a resume): the next apply() is step t + 1 with these moments. */
  restore(s: AdamState): void {
    const sizes = this.m.map((a) => a.length).join(',');
    if (
      s.m.length !== this.m.length ||
      s.v.length !== this.v.length ||
      s.m.map((a) => a.length).join(',') !== sizes ||
      s.v.map((a) => a.length).join(',') !== sizes
    )
      throw new Error(`optimizer state for variables of sizes [${s.m.map((a) => a.length).join(',')}] does not fit the model's [${sizes}]`);
    this.t = s.t;
    s.m.forEach((a, k) => this.m[k].set(a));
    s.v.forEach((a, k) => this.v[k].set(a));
  }

  /**
   * Applies the weighted mean of the shards' gradients (weights need not sum to 1: they are normalised),
   * summed in the order of `shards` (a fixed order gives a fixed float rounding).
   */
  apply(shards: GradientShard[]): void {
    this.t++;
    const total = shards.reduce((a, s) => a + s.weight, 0);
    const ws = shards.map((s) => s.weight / total);
    const { beta1: b1, beta2: b2, epsilon: eps } = this;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    const lr = this.learningRate;
    this.vars.forEach((variable, k) => {
      const w = (variable.dataSync() as Float32Array).slice();
      const m = this.m[k];
      const v = this.v[k];
      const gs = shards.map((s) => s.grads[k]);
      const n = w.length;
      for (let i = 0; i < n; i++) {
        let g = 0;
        for (let s = 0; s < gs.length; s++) g += gs[s][i] * ws[s];
        const mi = b1 * m[i] + (1 - b1) * g;
        const vi = b2 * v[i] + (1 - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        w[i] -= (lr * (mi / c1)) / (Math.sqrt(vi / c2) + eps);
      }
      setValues(variable, w);
    });
  }
}
