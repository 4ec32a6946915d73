import { accessSync } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { HeadstartError } from './errors';
import { BACKEND_CHOICES } from '../shared/options';

/** Which TensorFlow.js backend to use. `auto`: tfjs-node, then wasm, then cpu. */
export type BackendPreference = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** The backend that runs: 'tensorflow' (tfjs-node), 'wasm' or 'cpu'. */
  name: string;
  /** Why this one: the fallbacks tried before it, if any. */
  notes: string[];
  /** True when the backend computes on several threads by itself (no worker pool needed). */
  multiThreaded: boolean;
}

let current: BackendInfo | undefined;
let bannerMuted = false;

/**
 * tfjs prints a banner ("install our node backend") on stderr when its CPU
 * backend starts in Node. We report the backend ourselves, so that line goes.
 */
function muteTfjsBanner(): void {
  if (bannerMuted) return;
  bannerMuted = true;
  const warn = console.warn.bind(console);
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('looks like you are running TensorFlow.js in Node.js')) return;
    warn(...args);
  };
}

function tryRequireTfjsNode(): string | undefined {
  try {
    // Optional dependency: absent where libtensorflow could not be downloaded.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require('@tensorflow/tfjs-node');
    return undefined;
  } catch (err) {
    return `tfjs-node unavailable (${String((err as Error).message ?? err).split('\n')[0]})`;
  }
}

/** Folder holding the wasm binaries: next to the bundle if copied there, else the npm package. */
function wasmDir(): string {
  const bundled = path.join(__dirname, 'wasm');
  try {
    accessSync(path.join(bundled, 'tfjs-backend-wasm-simd.wasm'));
    return bundled + path.sep;
  } catch {
    const pkg = '@tensorflow/tfjs-backend-wasm'; // a variable: bundles resolve it at run time
    return path.dirname(require.resolve(pkg)) + path.sep; // running from source
  }
}

/**
 * Picks and initialises the TensorFlow.js backend once per process.
 * `setBackend` resolves false instead of throwing on failure: each step checks it.
 */
export async function initBackend(pref: BackendPreference = 'auto'): Promise<BackendInfo> {
  muteTfjsBanner();
  if (current && (pref === 'auto' || pref === current.name)) return current;
  const notes: string[] = [];
  const order: Array<'tensorflow' | 'wasm' | 'cpu'> =
    pref === 'auto' ? ['tensorflow', 'wasm', 'cpu'] : [pref, ...(['wasm', 'cpu'] as const).filter((b) => b !== pref)];
  for (const name of order) {
    if (name === 'tensorflow') {
      const why = tryRequireTfjsNode();
      if (why) {
        notes.push(why);
        continue;
      }
    }
    if (name === 'wasm') {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      wasm.setWasmPaths(wasmDir());
    }
    let ok = false;
    try {
      ok = await tf.setBackend(name);
    } catch (err) {
      notes.push(`${name} failed: ${String(err)}`);
    }
    if (ok && tf.getBackend() === name) {
      await tf.ready();
      current = { name, notes, multiThreaded: name === 'tensorflow' };
      return current;
    }
    notes.push(`${name} backend did not initialise`);
  }
  throw new HeadstartError('BACKEND', `no TensorFlow.js backend could start: ${notes.join('; ')}`);
}
