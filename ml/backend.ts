// Picks the fastest tfjs backend this machine has and reports which one serves.
// Chain: tfjs-node-gpu (CUDA) -> tfjs-node (libtensorflow) -> wasm (SIMD) -> pure JS cpu.
// The native ones are optional dependencies: absent where libtensorflow could not be downloaded.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
// the union package's node bundle registers every gradient (tfjs-core's CommonJS build registers none)
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { registerWasmKernels } from './wasm-kernels';

export interface BackendInfo {
  /** tfjs backend name as reported by tf.getBackend(), plus "-gpu" for the CUDA build */
  name: string;
  tfjsVersion: string;
  /** backends tried before this one, with why they were skipped */
  skipped: string[];
}

let chosen: Promise<BackendInfo> | undefined;
const CHAIN = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;

async function tryBackend(name: (typeof CHAIN)[number]): Promise<void> {
  if (name === 'tensorflow-gpu' || name === 'tensorflow') {
    // Registers the "tensorflow" backend on the shared tfjs-core when the native binding loads.
    require(name === 'tensorflow-gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node');
    if (!(await tf.setBackend('tensorflow'))) throw new Error('backend did not initialise');
    return;
  }
  if (name === 'wasm') registerWasmKernels();
  if (!(await tf.setBackend(name))) throw new Error('backend did not initialise');
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
      await tryBackend(forced as (typeof CHAIN)[number]);
      return { name: forced, tfjsVersion: tf.version_core, skipped: [] };
    }
    const skipped: string[] = [];
    for (const name of CHAIN) {
      try {
        await tryBackend(name);
        await tf.ready();
        return { name, tfjsVersion: tf.version_core, skipped };
      } catch (e) {
        skipped.push(`${name}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    throw new Error(`no tfjs backend could start: ${skipped.join('; ')}`);
  })();
  return chosen;
}
