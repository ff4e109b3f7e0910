// Picks the fastest tfjs backend this machine has and reports which one serves.
// Chain: tfjs-node-gpu (CUDA) -> tfjs-node (libtensorflow) -> wasm (SIMD) -> pure JS cpu.
// The native ones are optional dependencies: absent where libtensorflow could not be downloaded;
// scripts/setup-native.sh builds tfjs-node's binding against PyPI's tensorflow-cpu wheel instead.
import * as tf from '@tensorflow/tfjs-core';
import * as fs from 'node:fs';
import * as path from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
// the union package's node bundle registers every gradient (tfjs-core's CommonJS build registers none)
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels } from './wasm-kernels';
import { registerNativeKernels } from './native-kernels';

export interface BackendInfo {
  /** tfjs backend name as reported by tf.getBackend(), plus "-gpu" for the CUDA build */
  name: string;
  tfjsVersion: string;
  /** backends tried before this one, with why they were skipped */
  skipped: string[];
  /** the native library under a tensorflow backend, e.g. "tensorflow-cpu 2.21.0 (PyPI wheel)" */
  library?: string;
}

let chosen: Promise<BackendInfo> | undefined;
const CHAIN = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

const NATIVE_PACKAGE = { 'tensorflow-gpu': '@tensorflow/tfjs-node-gpu', tensorflow: '@tensorflow/tfjs-node' } as const;

/** The package folder of a native build, or an error saying why it cannot load. */
function nativePackageDir(name: keyof typeof NATIVE_PACKAGE): string {
  let dir: string;
  try {
    dir = path.dirname(require.resolve(`${NATIVE_PACKAGE[name]}/package.json`));
  } catch {
    throw new Error(`${NATIVE_PACKAGE[name]} is not installed${name === 'tensorflow' ? ' (scripts/setup-native.sh installs it)' : ''}`);
  }
  // checked before require: the package registers its kernels before it looks for its binding
  const { find } = require(require.resolve('@mapbox/node-pre-gyp', { paths: [dir] })) as { find(p: string): string };
  const binding = find(path.join(dir, 'package.json'));
  if (!fs.existsSync(binding)) throw new Error(`${NATIVE_PACKAGE[name]} has no binding at ${binding} (scripts/setup-native.sh builds it)`);
  return dir;
}

/** Whether a native build is here: its package and its binding (loading it is initBackend's job). */
export function nativeBuildInstalled(name: keyof typeof NATIVE_PACKAGE): boolean {
  try {
    nativePackageDir(name);
    return true;
  } catch {
    return false;
  }
}

/** Which native library a tensorflow backend runs on: setup-native.sh's note, else libtensorflow's own version. */
function nativeLibrary(dir: string): string {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'deps', 'prunewise-native.json'), 'utf8')) as { library: string }).library;
  } catch {
    const binding = (tf.backend() as unknown as { binding?: { TF_Version?: string } }).binding;
    return `libtensorflow ${binding?.TF_Version ?? '(version unknown)'}`;
  }
}

async function tryBackend(name: (typeof CHAIN)[number]): Promise<string | undefined> {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    const dir = nativePackageDir(name);
    // libtensorflow's load-time lines (oneDNN, CPU features) on stderr: 2 does not hide them all; a
    // failing op still throws with TensorFlow's message. TF_CPP_MIN_LOG_LEVEL=0 shows them.
    process.env.TF_CPP_MIN_LOG_LEVEL ??= '3';
    // TensorFlow's deterministic mode (ops without a deterministic kernel raise instead of varying):
    // same campaign file + seed + backend → the same models (README, "what is reproducible")
    process.env.TF_DETERMINISTIC_OPS ??= '1';
    // Registers the "tensorflow" backend on the shared tfjs-core when the native binding loads.
    require(dir);
    if (!(await tf.setBackend('tensorflow'))) throw new Error('backend did not initialise');
    // TensorFlow's fused training ops in place of tfjs's compositions (ReLU gradient, batch norm): only while on tensorflow
    registerNativeKernels();
    return nativeLibrary(dir);
  }
  // our composed kernels are registered for the wasm backend only, and only when it is chosen
  if (name === 'wasm') registerWasmKernels();
  if (!(await tf.setBackend(name))) throw new Error('backend did not initialise');
  return undefined;
}

/**
 * Initialises the fastest available backend once per process. PRUNEWISE_BACKEND=cpu|wasm|tensorflow
 * (or `force`) forces one (an error if it cannot start, never a silent fallback).
 */
export function initBackend(force?: string): Promise<BackendInfo> {
  chosen ??= (async () => {
    const forced = force ?? process.env.PRUNEWISE_BACKEND;
    if (forced) {
      if (!(CHAIN as readonly string[]).includes(forced)) {
        throw new Error(`PRUNEWISE_BACKEND: unknown backend "${forced}": use one of ${CHAIN.join(', ')}`);
      }
      const library = await tryBackend(forced as (typeof CHAIN)[number]);
      return { name: forced, tfjsVersion: tf.version_core, skipped: [], ...(library ? { library } : {}) };
    }
    const skipped: string[] = [];
    for (const name of CHAIN) {
      try {
        const library = await tryBackend(name);
        await tf.ready();
        return { name, tfjsVersion: tf.version_core, skipped, ...(library ? { library } : {}) };
      } catch (e) {
        skipped.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    throw new Error(`no tfjs backend could start: ${skipped.join('; ')}`);
  })();
  return chosen;
}
