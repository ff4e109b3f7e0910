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

  /** Variable k was changed outside apply() (the sparsity penalty's decay): nothing to do, apply() reads the variables each step. */
  weightsChanged(_k: number): void {}

  /** Continues from a saved state (a resume): the next apply() is step t + 1 with these moments. */
  restore(s: AdamState): void {
    checkStateFits(
      s,
      this.m.map((a) => a.length),
    );
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

/** The parts of tfjs-node's backend used here (its public op-execution entry). */
interface NodeBackend {
  binding: { TF_ATTR_TYPE: number; TF_ATTR_SHAPE: number; TF_ATTR_STRING: number; TF_ATTR_BOOL: number; TF_FLOAT: number };
  executeSingleOutput(name: string, attrs: Array<{ name: string; type: number; value: unknown }>, inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attrs: Array<{ name: string; type: number; value: unknown }>, inputs: tf.Tensor[], numOutputs: number): tf.Tensor[];
}

let nativeAdams = 0;

/**
 * Adam on the native `tensorflow` backend, the same step as FusedAdam (same formulas, defaults and
 * state) done by TensorFlow: each variable, with its two moments, lives in a TensorFlow resource
 * variable for the training, and one ResourceApplyAdam op per variable updates it in place from
 * the gradient tensor — no gradient or weight crosses into JavaScript. TensorFlow's kernel computes
 * var −= lr·√(1−β2ᵗ)/(1−β1ᵗ)·m / (√v + ε̂); with ε̂ = ε·√(1−β2ᵗ) that is FusedAdam's
 * var −= lr·(m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε) (Kingma & Ba 2015, algorithm 1), in float32.
 * The tfjs variables are updated after every step; call dispose() when the training ends.
 */
export class NativeAdam {
  private t = 0;
  private readonly handles: Array<{ w: tf.Tensor; m: tf.Tensor; v: tf.Tensor }>;
  private readonly constants: tf.Scalar[];
  private readonly b: NodeBackend;
  constructor(
    private readonly vars: tf.Variable[],
    /** the rate of the next apply() (a schedule sets it per step: ml/recipe.ts learningRateAt) */
    public learningRate: number,
    private readonly beta1 = 0.9,
    private readonly beta2 = 0.999,
    private readonly epsilon = tf.backend().epsilon(),
  ) {
    if (tf.getBackend() !== 'tensorflow') throw new Error(`NativeAdam runs on the tensorflow backend, not ${tf.getBackend()}`);
    this.b = tf.backend() as unknown as NodeBackend;
    const id = ++nativeAdams;
    const B = this.b.binding;
    const handle = (v: tf.Variable, name: string) =>
      this.b.executeSingleOutput(
        'VarHandleOp',
        [
          { name: 'dtype', type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
          { name: 'shape', type: B.TF_ATTR_SHAPE, value: v.shape },
          { name: 'shared_name', type: B.TF_ATTR_STRING, value: `prunewise_adam_${process.pid}_${id}_${name}` },
          { name: 'container', type: B.TF_ATTR_STRING, value: '' },
        ],
        [],
      );
    this.handles = [];
    try {
      vars.forEach((v, k) => {
        if (v.dtype !== 'float32') throw new Error(`NativeAdam: variable ${v.name} is ${v.dtype}, not float32`);
        const h = { w: handle(v, `${k}_w`), m: handle(v, `${k}_m`), v: handle(v, `${k}_v`) };
        this.handles.push(h);
        this.assign(h.w, v);
        tf.tidy(() => {
          this.assign(h.m, tf.zerosLike(v));
          this.assign(h.v, tf.zerosLike(v));
        });
      });
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.constants = [tf.scalar(beta1), tf.scalar(beta2)].map((s) => tf.keep(s));
  }

  private assign(handle: tf.Tensor, value: tf.Tensor): void {
    const B = this.b.binding;
    this.b.executeMultipleOutputs('AssignVariableOp', [{ name: 'dtype', type: B.TF_ATTR_TYPE, value: B.TF_FLOAT }], [handle, value], 0);
  }

  private read(handle: tf.Tensor): tf.Tensor {
    const B = this.b.binding;
    return this.b.executeSingleOutput('ReadVariableOp', [{ name: 'dtype', type: B.TF_ATTR_TYPE, value: B.TF_FLOAT }], [handle]);
  }

  /** A copy of the step count and moments (for a checkpoint), as FusedAdam's. */
  state(): AdamState {
    const read = (h: tf.Tensor) => {
      const t = this.read(h);
      try {
        return (t.dataSync() as Float32Array).slice();
      } finally {
        t.dispose();
      }
    };
    return { t: this.t, m: this.handles.map((h) => read(h.m)), v: this.handles.map((h) => read(h.v)) };
  }

  /** Variable k was changed outside apply() (the sparsity penalty's decay): TensorFlow's copy takes its value. */
  weightsChanged(k: number): void {
    this.assign(this.handles[k].w, this.vars[k]);
  }

  /** Continues from a saved state (a resume, FusedAdam's too): the next apply() is step t + 1 with these moments. */
  restore(s: AdamState): void {
    checkStateFits(
      s,
      this.vars.map((v) => v.size),
    );
    this.t = s.t;
    tf.tidy(() =>
      this.handles.forEach((h, k) => {
        this.assign(h.m, tf.tensor(s.m[k], this.vars[k].shape));
        this.assign(h.v, tf.tensor(s.v[k], this.vars[k].shape));
      }),
    );
  }

  /** One Adam step from the batch-mean gradient of each variable (in order); the tfjs variables take the new values. */
  apply(grads: tf.Tensor[]): void {
    if (grads.length !== this.vars.length) throw new Error(`NativeAdam: ${grads.length} gradients for ${this.vars.length} variables`);
    this.t++;
    const B = this.b.binding;
    const [b1, b2] = this.constants;
    const step = [
      tf.scalar(this.beta1 ** this.t),
      tf.scalar(this.beta2 ** this.t),
      tf.scalar(this.epsilon * Math.sqrt(1 - this.beta2 ** this.t)),
      tf.scalar(this.learningRate),
    ];
    const lr = step[3];
    const attrs = [
      { name: 'T', type: B.TF_ATTR_TYPE, value: B.TF_FLOAT },
      { name: 'use_locking', type: B.TF_ATTR_BOOL, value: false },
      { name: 'use_nesterov', type: B.TF_ATTR_BOOL, value: false },
    ];
    try {
      this.handles.forEach((h, k) => {
        this.b.executeMultipleOutputs('ResourceApplyAdam', attrs, [h.w, h.m, h.v, step[0], step[1], lr, b1, b2, step[2], grads[k]], 0);
        const value = this.read(h.w);
        this.vars[k].assign(value);
        value.dispose();
      });
    } finally {
      tf.dispose(step);
    }
  }

  /** Frees the TensorFlow variables (the tfjs variables keep the last values). */
  dispose(): void {
    const B = this.b.binding;
    for (const h of this.handles)
      for (const r of [h.w, h.m, h.v]) {
        if (r.isDisposed) continue;
        this.b.executeMultipleOutputs('DestroyResourceOp', [{ name: 'ignore_lookup_error', type: B.TF_ATTR_BOOL, value: true }], [r], 0);
        r.dispose();
      }
    tf.dispose(this.constants ?? []);
  }
}

/** @throws Error when a saved optimizer state's moments are not one per variable of these sizes (elements each) */
function checkStateFits(s: AdamState, sizes: number[]): void {
  const want = sizes.join(',');
  if (s.m.length !== sizes.length || s.v.length !== sizes.length || s.m.map((a) => a.length).join(',') !== want || s.v.map((a) => a.length).join(',') !== want)
    throw new Error(`optimizer state for variables of sizes [${s.m.map((a) => a.length).join(',')}] does not fit the model's [${want}]`);
}
