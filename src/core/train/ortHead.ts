import { onnx } from 'onnx-proto';
import { defaultOrtThreads, loadOrt } from '../onnx/engine';
import { HeadstartError } from '../errors';
import { Rng } from '../rng';
import type { Chunk, StepEngine, StepResult } from './loop';

type Ort = NonNullable<ReturnType<typeof loadOrt>>;
type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

const F = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;
const BETA1 = 0.9;
const BETA2 = 0.999;
/** TF.js's Adam epsilon (backend epsilon 1e-7): same update as tf.train.adam. */
const EPS = 1e-7;

/** Rows per ONNX Runtime call: bounds how long one call blocks (cancellation latency), ~10 ms at 1280-d. */
const ROWS_PER_RUN = 2048;

/** A graph under construction: nodes with generated output names. */
class Graph {
  readonly nodes: onnx.INodeProto[] = [];
  readonly inits: onnx.ITensorProto[] = [];
  private n = 0;
  constructor(private readonly prefix: string) {}

  /** Adds a node; attributes: an integer, `{ f }` a float, or a graph (Loop's body). */
  op(type: string, inputs: string[], attrs: Record<string, number | { f: number } | onnx.IGraphProto> = {}, outputs?: string[]): string {
    const outs = outputs ?? [`${this.prefix}${type}_${this.n++}`];
    const T = onnx.AttributeProto.AttributeType;
    const attribute = Object.entries(attrs).map(([name, v]) =>
      typeof v === 'number' ? { name, type: T.INT, i: v } : 'f' in v ? { name, type: T.FLOAT, f: v.f as number } : { name, type: T.GRAPH, g: v as onnx.IGraphProto },
    );
    this.nodes.push({ opType: type, input: inputs, output: outs, name: outs[0], attribute });
    return outs[0]!;
  }

  const(name: string, values: Float32Array | BigInt64Array, dims: number[]): string {
    this.inits.push({ name, dims, dataType: values instanceof Float32Array ? F : I64, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    return name;
  }
}

const info = (name: string, elemType: number, dims?: Array<number | string>): onnx.IValueInfoProto => ({
  name,
  type: { tensorType: { elemType, shape: dims ? { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } : undefined } },
});

function model(g: Graph, inputs: onnx.IValueInfoProto[], outputs: string[]): Uint8Array {
  const m: onnx.IModelProto = {
    irVersion: 8,
    producerName: 'headstart-trainer',
    opsetImport: [{ domain: '', version: 13 }],
    graph: { name: 'head', node: g.nodes, initializer: g.inits, input: inputs, output: outputs.map((o) => ({ name: o })) },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(m)).finish();
}

/** Parameter names in tf.Sequential weight order: [w1, b1,] w2, b2. */
function paramNames(hidden: number): string[] {
  return hidden > 0 ? ['w1', 'b1', 'w2', 'b2'] : ['w2', 'b2'];
}

/** Forward pass: [relu(x w1 + b1) * mask], softmax(h w2 + b2). */
function forward(g: Graph, x: string, hidden: number, p: (n: string) => string, mask?: string): { h?: string; hd: string; probs: string } {
  if (hidden === 0) return { hd: x, probs: g.op('Softmax', [g.op('Gemm', [x, p('w2'), p('b2')])]) };
  const h = g.op('Relu', [g.op('Gemm', [x, p('w1'), p('b1')])]);
  const hd = mask ? g.op('Mul', [h, mask]) : h;
  return { h, hd, probs: g.op('Softmax', [g.op('Gemm', [hd, p('w2'), p('b2')])]) };
}

/**
 * The training graph: an ONNX Loop of Adam steps over batches of rows of X.
 * Per step: gather the batch, forward, analytic backward of the class-weighted
 * cross-entropy (+ L2 on kernels), Adam update. Outputs the new parameters and
 * Adam moments, and per step the loss and the batch's probabilities (before
 * its update, like a Keras fit).
 */
function trainGraph(d: number, hidden: number, k: number): Uint8Array {
  const names = paramNames(hidden);
  const outer = new Graph('o_');
  const body = new Graph('b_');
  const c = (name: string, v: number) => body.const(name, new Float32Array([v]), []);
  const ax0 = body.const('ax0', BigInt64Array.from([0n]), [1]);
  const ax1 = body.const('ax1', BigInt64Array.from([1n]), [1]);
  const [b1c, b2c, b2g, tiny] = [c('beta1', BETA1), c('beta2', BETA2), c('beta2g', (1 - BETA2) / (1 - BETA1) ** 2), c('tiny', 1e-7)];
  const cur = (n: string) => `${n}_in`;
  const i = 'iter';
  const rows = body.op('Gather', ['idx', i]);
  const x = body.op('Gather', ['X', rows]);
  const yw = body.op('Gather', ['yw', i]);
  const mask = hidden > 0 ? body.op('Gather', ['mask', i]) : undefined;
  const ilr = body.op('Gather', ['ilr', i]);
  const eps = body.op('Gather', ['eps', i]);
  const f = forward(body, x, hidden, cur, mask);
  // d(sum_i w_i CE_i / sum w) / dlogits = p * (w_i / sum w) - yw, yw = onehot * w_i / sum w.
  const dz = body.op('Sub', [body.op('Mul', [f.probs, body.op('ReduceSum', [yw, ax1])]), yw]);
  // Gradients come out scaled by (1 - beta1), the L2 term (2 l2 w) folded into the same Gemm:
  // one pass fewer per tensor in the Adam update, which dominates a small step's time.
  // L2 is an input (not a constant) so that one session serves every L2 of the grid.
  const a = { f: 1 - BETA1 };
  const decay = (w: string) => body.op('Mul', [cur(w), 'reg']);
  const gs: Record<string, string> = {};
  gs.w2 = body.op('Gemm', [f.hd, dz, decay('w2')], { transA: 1, alpha: a });
  gs.b2 = body.op('Mul', [body.op('ReduceSum', [dz, ax0], { keepdims: 0 }), c('b1n', 1 - BETA1)]);
  if (hidden > 0) {
    const pos = body.op('Cast', [body.op('Greater', [f.h!, c('zero', 0)])], { to: F });
    const dh = body.op('Mul', [body.op('Gemm', [dz, cur('w2')], { transB: 1 }), body.op('Mul', [mask!, pos])]);
    gs.w1 = body.op('Gemm', [x, dh, decay('w1')], { transA: 1, alpha: a });
    gs.b1 = body.op('Mul', [body.op('ReduceSum', [dh, ax0], { keepdims: 0 }), 'b1n']);
  }
  let loss = body.op('Neg', [body.op('ReduceSum', [body.op('Mul', [yw, body.op('Log', [body.op('Max', [f.probs, tiny])])])], { keepdims: 0 })]);
  for (const w of names.filter((n) => n.startsWith('w'))) loss = body.op('Add', [loss, body.op('Mul', [body.op('ReduceSumSquare', [cur(w)], { keepdims: 0 }), 'l2'])]);
  const carried: string[] = [];
  for (const n of names) {
    const g = gs[n]!; // (1 - beta1) * gradient
    const m = body.op('Add', [body.op('Mul', [cur(`m_${n}`), b1c]), g], {}, [`m_${n}_out`]);
    const v = body.op('Add', [body.op('Mul', [cur(`v_${n}`), b2c]), body.op('Mul', [body.op('Mul', [g, g]), b2g])], {}, [`v_${n}_out`]);
    body.op('Sub', [cur(n), body.op('Div', [m, body.op('Mul', [body.op('Add', [body.op('Sqrt', [v]), eps]), ilr])])], {}, [`${n}_out`]);
    carried.push(n);
  }
  const state = [...carried, ...carried.map((n) => `m_${n}`), ...carried.map((n) => `v_${n}`)];
  body.op('Identity', ['cond_in'], {}, ['cond_out']);
  body.op('Identity', [loss], {}, ['loss_out']);
  body.op('Identity', [f.probs], {}, ['probs_out']);
  const bodyGraph: onnx.IGraphProto = {
    name: 'step',
    node: body.nodes,
    initializer: body.inits,
    input: [info(i, I64, []), info('cond_in', onnx.TensorProto.DataType.BOOL, []), ...state.map((s) => info(cur(s), F))],
    output: [info('cond_out', onnx.TensorProto.DataType.BOOL, []), ...state.map((s) => info(`${s}_out`, F)), info('loss_out', F), info('probs_out', F)],
  };
  // reg = 2 * l2 * (1 - beta1): the L2 gradient, scaled like the others.
  outer.op('Mul', ['l2', outer.const('regScale', new Float32Array([2 * (1 - BETA1)]), [])], {}, ['reg']);
  outer.op('Loop', ['trips', '', ...state], { body: bodyGraph }, [...state.map((s) => `${s}_new`), 'losses', 'probs']);
  const shapes = paramShapes(d, hidden, k);
  const inputs = [
    info('X', F, ['n', d]),
    info('idx', I64, ['steps', 'batch']),
    info('yw', F, ['steps', 'batch', k]),
    ...(hidden > 0 ? [info('mask', F, ['steps', 'batch', hidden])] : []),
    info('ilr', F, ['steps']),
    info('l2', F, []),
    info('eps', F, ['steps']),
    info('trips', I64, []),
    ...state.map((s) => info(s, F, shapes[s.replace(/^[mv]_/, '')])),
  ];
  return model(outer, inputs, [...state.map((s) => `${s}_new`), 'losses', 'probs']);
}

function predictGraph(d: number, hidden: number, k: number): Uint8Array {
  const g = new Graph('p_');
  const f = forward(g, 'x', hidden, (n) => n);
  g.op('Identity', [f.probs], {}, ['probs']);
  const shapes = paramShapes(d, hidden, k);
  return model(g, [info('x', F, ['n', d]), ...paramNames(hidden).map((n) => info(n, F, shapes[n]))], ['probs']);
}

function paramShapes(d: number, hidden: number, k: number): Record<string, number[]> {
  return hidden > 0 ? { w1: [d, hidden], b1: [hidden], w2: [hidden, k], b2: [k] } : { w2: [d, k], b2: [k] };
}

interface Sessions {
  train: Session;
  predict: Session;
}

/** Sessions per head shape, reused by every fit of that shape (cross-validation makes dozens). */
const sessions = new Map<string, Promise<Sessions>>();
const MAX_SESSIONS = 8;

function sessionsFor(ort: Ort, d: number, hidden: number, k: number): Promise<Sessions> {
  const key = `${d}x${hidden}x${k}`;
  let s = sessions.get(key);
  if (!s) {
    // Up to 4 intra-op threads for the matrix products (spinning off, so a busy machine loses little).
    const opts = { intraOpNumThreads: Math.min(4, defaultOrtThreads()), extra: { session: { intra_op: { allow_spinning: '0' } } } };
    s = Promise.all([ort.InferenceSession.create(trainGraph(d, hidden, k), opts), ort.InferenceSession.create(predictGraph(d, hidden, k), opts)]).then(([train, predict]) => ({ train, predict }));
    sessions.set(key, s);
    if (sessions.size > MAX_SESSIONS) {
      const [oldKey, old] = sessions.entries().next().value as [string, Promise<Sessions>];
      sessions.delete(oldKey);
      void old.then((o) => Promise.all([o.train.release(), o.predict.release()]));
    }
  }
  return s;
}

/** Whether the ONNX Runtime trainer can run here. */
export function ortTrainerAvailable(): boolean {
  return !!loadOrt();
}

/**
 * Trains a dense head in ONNX Runtime: chunks of Adam steps run inside one
 * graph call (a Loop), so a 1280→128→5 head on 500 vectors spends its time in
 * MLAS's matrix products instead of per-op dispatch. Dropout masks come from
 * a seeded generator in JS, so a seed gives the same weights every time.
 */
export class OrtHeadEngine implements StepEngine {
  readonly name = 'onnxruntime';
  readonly rowsPerRun = ROWS_PER_RUN;
  private params: Float32Array[];
  private moments: Float32Array[];
  private readonly ort: Ort;
  private readonly shapes: number[][];
  private readonly maskRng: Rng;
  private readonly xTensor: InstanceType<Ort['Tensor']>;

  private constructor(
    private readonly s: Sessions,
    x: Float32Array,
    private readonly d: number,
    private readonly hidden: number,
    private readonly k: number,
    private readonly o: { learningRate: number; l2: number; dropout: number; seed: number },
    init: Float32Array[],
  ) {
    this.ort = loadOrt()!;
    this.params = init.map((w) => w.slice());
    this.moments = [...init, ...init].map((w) => new Float32Array(w.length));
    const shapes = paramShapes(d, hidden, k);
    this.shapes = paramNames(hidden).map((n) => shapes[n]!);
    this.maskRng = new Rng((o.seed * 2_654_435_761) >>> 0);
    this.xTensor = new this.ort.Tensor('float32', x, [x.length / d, d]);
  }

  static async create(x: Float32Array, d: number, hidden: number, k: number, o: { learningRate: number; l2: number; dropout: number; seed: number }, init: Float32Array[]): Promise<OrtHeadEngine> {
    const ort = loadOrt();
    if (!ort) throw new HeadstartError('BACKEND', 'the ONNX Runtime head trainer needs onnxruntime-node, which did not load here');
    return new OrtHeadEngine(await sessionsFor(ort, d, hidden, k), x, d, hidden, k, o, init);
  }

  async steps(chunk: Chunk): Promise<StepResult> {
    const { ort, k, hidden } = this;
    const steps = chunk.batches.length;
    const bs = Math.max(...chunk.batches.map((b) => b.rows.length));
    // Short batches are padded with weight-0 rows: they add nothing to loss or gradients.
    const idx = new BigInt64Array(steps * bs);
    const yw = new Float32Array(steps * bs * k);
    const ilr = new Float32Array(steps);
    const eps = new Float32Array(steps);
    chunk.batches.forEach((b, s) => {
      const wsum = b.weights.reduce((a, w) => a + w, 0) || 1;
      b.rows.forEach((r, j) => {
        idx[s * bs + j] = BigInt(r);
        yw[(s * bs + j) * k + b.labels[j]!] = b.weights[j]! / wsum;
      });
      const t = chunk.firstStep + s + 1;
      const c1 = 1 - BETA1 ** t;
      const c2 = 1 - BETA2 ** t;
      ilr[s] = c1 / (this.o.learningRate * Math.sqrt(c2)); // Adam's bias-corrected step size, inverted
      eps[s] = EPS * Math.sqrt(c2);
    });
    const feeds: Record<string, InstanceType<Ort['Tensor']>> = {
      X: this.xTensor,
      idx: new ort.Tensor('int64', idx, [steps, bs]),
      yw: new ort.Tensor('float32', yw, [steps, bs, k]),
      ilr: new ort.Tensor('float32', ilr, [steps]),
      eps: new ort.Tensor('float32', eps, [steps]),
      l2: new ort.Tensor('float32', new Float32Array([this.o.l2]), []),
      trips: new ort.Tensor('int64', BigInt64Array.from([BigInt(steps)]), []),
    };
    if (hidden > 0) feeds.mask = new ort.Tensor('float32', this.masks(steps * bs * hidden), [steps, bs, hidden]);
    const names = paramNames(hidden);
    const state = [...names, ...names.map((n) => `m_${n}`), ...names.map((n) => `v_${n}`)];
    const values = [...this.params, ...this.moments];
    state.forEach((s, j) => (feeds[s] = new ort.Tensor('float32', values[j]!, this.shapes[j % names.length]!)));
    const out = await this.s.train.run(feeds);
    const next = state.map((s) => out[`${s}_new`]!.data as Float32Array);
    this.params = next.slice(0, names.length);
    this.moments = next.slice(names.length);
    const probs = out.probs!.data as Float32Array;
    // Drop the padding rows: probabilities of the real rows, batch after batch.
    const real = new Float32Array(chunk.batches.reduce((a, b) => a + b.rows.length, 0) * k);
    let at = 0;
    chunk.batches.forEach((b, s) => {
      real.set(probs.subarray(s * bs * k, (s * bs + b.rows.length) * k), at);
      at += b.rows.length * k;
    });
    return { losses: out.losses!.data as Float32Array, probs: real };
  }

  /** Inverted-dropout masks: 0 or 1 / (1 - rate). */
  private masks(n: number): Float32Array {
    const m = new Float32Array(n);
    const rate = this.o.dropout;
    const keep = 1 / (1 - rate);
    for (let i = 0; i < n; i++) m[i] = rate > 0 && this.maskRng.next() < rate ? 0 : keep;
    return m;
  }

  async predict(x: Float32Array): Promise<Float32Array> {
    const n = x.length / this.d;
    if (n === 0) return new Float32Array(0);
    const feeds: Record<string, InstanceType<Ort['Tensor']>> = { x: new this.ort.Tensor('float32', x, [n, this.d]) };
    paramNames(this.hidden).forEach((name, j) => (feeds[name] = new this.ort.Tensor('float32', this.params[j]!, this.shapes[j]!)));
    return (await this.s.predict.run(feeds)).probs!.data as Float32Array;
  }

  getWeights(): Float32Array[] {
    return this.params.map((p) => p.slice());
  }

  setWeights(w: Float32Array[]): void {
    this.params = w.map((p) => p.slice());
  }

  dispose(): void {
    // Sessions are shared per head shape (see sessionsFor); the arrays are garbage-collected.
  }
}
