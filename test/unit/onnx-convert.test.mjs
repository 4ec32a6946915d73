// TF.js → ONNX converter (core.convertTfjsModel): every bundled catalogue
// backbone, layers models built by code with the layer types of the remote
// catalogue (MobileNet v1 / v2 of Teachable Machine) and of InceptionV3, a
// hand-written TF graph model, and a trained head, each run in onnxruntime-node
// against TensorFlow.js on the same random inputs. Unsupported operations are
// a BAD_MODEL error naming the operation and the node or layer.
//
// Tolerance everywhere: max |onnx - tfjs| ≤ 1e-4 × max |tfjs output| (float32
// arithmetic in a different order: ~1e-6 relative is what it measures).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { core, root, tempDir, tf } from './helpers.mjs';

const require = createRequire(path.join(root, 'package.json'));
const ort = require('onnxruntime-node');
const { onnx } = require('onnx-proto');

const REL_TOL = 1e-4;

await core.initBackend();

/** Runs ONNX bytes in ONNX Runtime: one input, the first output, as a flat Float32Array. */
async function runOnnx(bytes, input, dims, inputName = 'image') {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  try {
    const out = await session.run({ [inputName]: new ort.Tensor('float32', input, dims) });
    return { data: out[session.outputNames[0]].data, dims: out[session.outputNames[0]].dims, outputName: session.outputNames[0] };
  } finally {
    await session.release();
  }
}

/** Structure of a converted model: opset 13, every initializer feeds some node, names are unique. */
function checkStructure(what, bytes) {
  const model = onnx.ModelProto.decode(bytes);
  assert.deepEqual(model.opsetImport.map((o) => [o.domain ?? '', Number(o.version)]), [['', 13]], `${what}: opset 13`);
  const g = model.graph;
  const used = new Set(g.node.flatMap((nd) => nd.input));
  const unused = g.initializer.map((i) => i.name).filter((n) => !used.has(n));
  assert.deepEqual(unused, [], `${what}: unused initializers`);
  const outputs = g.node.flatMap((nd) => nd.output);
  assert.equal(new Set(outputs).size, outputs.length, `${what}: every tensor is written once`);
  return model;
}

/** {maxDiff, maxAbs} of two equal-length arrays. */
function compare(actual, expected) {
  assert.equal(actual.length, expected.length, 'same number of values');
  let maxDiff = 0;
  let maxAbs = 0;
  for (let i = 0; i < expected.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(actual[i] - expected[i]));
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]));
  }
  return { maxDiff, maxAbs };
}

function assertClose(t, what, actual, expected) {
  const { maxDiff, maxAbs } = compare(actual, expected);
  t.diagnostic(`${what}: max |onnx - tfjs| = ${maxDiff.toExponential(2)}, max |tfjs| = ${maxAbs.toPrecision(3)}, ratio ${(maxDiff / maxAbs).toExponential(2)} (tolerance ${REL_TOL})`);
  assert.ok(maxAbs > 0, `${what}: the reference output is not all zeros`);
  assert.ok(maxDiff <= REL_TOL * maxAbs, `${what}: max diff ${maxDiff} > ${REL_TOL} x ${maxAbs}`);
}

/** n random 0..255 pixel images (integers, as decoded images are). */
function randomPixels(n, size, seed) {
  const rng = new core.Rng(seed);
  const px = new Float32Array(n * size * size * 3);
  for (let i = 0; i < px.length; i++) px[i] = Math.floor(rng.next() * 256);
  return px;
}

/** Options ensureOnnxBackbone uses for a catalogue entry. */
function backboneOptions(entry) {
  const [lo, hi] = entry.inputRange;
  return { output: entry.featureNode, normalise: { scale: (hi - lo) / 255, offset: lo }, pool: entry.pool, inputName: 'image', outputName: 'features' };
}

test('bundled backbones: the ONNX conversion gives the TF.js extractor features (graph mobilenet-v2-140, layers mobilenet-v2-100, inception-v3 at 299 px)', async (t) => {
  const cacheDir = await tempDir(t);
  for (const [id, n] of [['mobilenet-v2-140', 3], ['mobilenet-v2-100', 3], ['inception-v3', 1]]) {
    const b = await core.resolveBackbone(id, cacheDir);
    const size = b.entry.inputSize;
    const conv = await core.convertTfjsModel(b.dir, backboneOptions(b.entry));
    checkStructure(id, conv.bytes);
    assert.deepEqual(conv.inputDims, ['N', size, size, 3], `${id}: NHWC input with a symbolic batch`);
    assert.equal(conv.inputName, 'image');
    assert.equal(conv.outputName, 'features');
    const px = randomPixels(n, size, 11);
    const out = await runOnnx(conv.bytes, px, [n, size, size, 3]);
    assert.deepEqual(out.dims, [n, b.entry.featureSize], `${id}: [N, ${b.entry.featureSize}] features`);
    const n0 = tf.memory().numTensors;
    const ex = await core.loadTfjsExtractor(b);
    const ref = await ex.extract(px, n);
    ex.dispose();
    assert.ok(tf.memory().numTensors <= n0, `${id}: the TF.js extractor left no tensors`);
    assertClose(t, `${id} (${b.entry.format}, ${size} px, ${n} images, ${(conv.bytes.length / 1e6).toFixed(1)} MB onnx)`, out.data, ref);
  }
});

test('extraction graph: the pixel prefix (x * scale + offset, NHWC → NCHW) is split off and done in one pass by the extractor, with the same features', async (t) => {
  const cacheDir = await tempDir(t);
  for (const id of ['mobilenet-v2-140', 'mobilenet-v2-100']) {
    const b = await core.resolveBackbone(id, cacheDir);
    const size = b.entry.inputSize;
    const file = await core.ensureOnnxBackbone(b, cacheDir);
    const full = new Uint8Array(await readFile(file));
    const split = await core.extractionModel(file);
    assert.ok(split.prefix, `${id}: the converter's prefix is found`);
    const [lo, hi] = b.entry.inputRange;
    assert.ok(Math.abs(split.prefix.scale - (hi - lo) / 255) < 1e-7 && Math.abs(split.prefix.offset - lo) < 1e-7, `${id}: scale and offset read back from the graph`);
    const g = checkStructure(`${id} stripped`, split.bytes).graph;
    assert.equal(g.input.length, 1);
    assert.deepEqual(g.input[0].type.tensorType.shape.dim.slice(1).map((d) => Number(d.dimValue)), [3, size, size], `${id}: NCHW input`);
    assert.notEqual(g.node[0].opType, 'Transpose', `${id}: no layout op left at the top`);
    assert.equal(onnx.ModelProto.decode(full).graph.node.length - 3, g.node.length, `${id}: exactly the three prefix nodes went`);
    const n = 2;
    const px = randomPixels(n, size, 5);
    const ref = await runOnnx(full, px, [n, size, size, 3]);
    const direct = await runOnnx(split.bytes, core.toNchw(px, n, size, split.prefix.scale, split.prefix.offset), [n, 3, size, size], split.prefix.inputName);
    assertClose(t, `${id} stripped graph on toNchw pixels vs the whole graph`, direct.data, ref.data);
    const ex = await core.loadOnnxExtractor(file, size, 1);
    try {
      assertClose(t, `${id} loadOnnxExtractor (NHWC 0..255 in) vs the whole graph`, await ex.extract(px.slice(), n), ref.data);
    } finally {
      await ex.close();
    }
  }
  // A graph without the prefix (no normalisation: Transpose first) runs as it is.
  const b = await core.resolveBackbone('mobilenet-v2-100', cacheDir);
  const bare = await core.convertTfjsModel(b.dir, { ...backboneOptions(b.entry), normalise: undefined });
  assert.equal(core.splitPixelPrefix(bare.bytes), undefined, 'no Mul/Add prefix: nothing is split off');
});

// ---- layers models built by code ---------------------------------------------------------

let seedCounter = 100;
const init = () => tf.initializers.glorotUniform({ seed: seedCounter++ });
/** BatchNormalization with non-trivial random statistics (default ones would be an identity). */
const bn = (extra = {}) =>
  tf.layers.batchNormalization({
    gammaInitializer: tf.initializers.randomUniform({ minval: 0.5, maxval: 1.5, seed: seedCounter++ }),
    betaInitializer: tf.initializers.randomNormal({ stddev: 0.2, seed: seedCounter++ }),
    movingMeanInitializer: tf.initializers.randomNormal({ stddev: 0.3, seed: seedCounter++ }),
    movingVarianceInitializer: tf.initializers.randomUniform({ minval: 0.3, maxval: 2, seed: seedCounter++ }),
    ...extra,
  });
const relu6 = (name) => tf.layers.reLU({ maxValue: 6, ...(name ? { name } : {}) });

/**
 * MobileNet v1 / v2 of Teachable Machine in miniature: Rescaling to [-1, 1],
 * asymmetric ZeroPadding2D, Conv2D without bias + BatchNormalization + ReLU(6),
 * a v1 depthwise-separable block, a v2 inverted residual (Add), a stride-2 SAME
 * depthwise on an odd size with depth_multiplier 2, a stride-2 SAME Conv2D on
 * an odd size, feature layer 'out_relu',
 * GlobalAveragePooling2D and a Dense softmax head.
 */
function mobilenetLike() {
  const input = tf.input({ shape: [35, 35, 3] });
  let x = tf.layers.rescaling({ scale: 1 / 127.5, offset: -1 }).apply(input);
  x = tf.layers.zeroPadding2d({ padding: [[0, 1], [0, 1]] }).apply(x); // 36 x 36
  x = tf.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'valid', useBias: false, kernelInitializer: init() }).apply(x); // 17 x 17
  x = relu6().apply(bn().apply(x));
  // v1 block: depthwise 3x3 + pointwise 1x1
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init() }).apply(x);
  x = relu6().apply(bn().apply(x));
  x = tf.layers.conv2d({ filters: 12, kernelSize: 1, useBias: false, kernelInitializer: init() }).apply(x);
  const skip = tf.layers.activation({ activation: 'relu6' }).apply(bn().apply(x)); // MobileNet v1's Activation(relu6)
  // v2 inverted residual: expand, depthwise, project, Add
  x = tf.layers.conv2d({ filters: 24, kernelSize: 1, useBias: false, kernelInitializer: init() }).apply(skip);
  x = relu6().apply(bn().apply(x));
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, padding: 'same', useBias: false, depthwiseInitializer: init() }).apply(x);
  x = relu6().apply(bn().apply(x));
  x = tf.layers.conv2d({ filters: 12, kernelSize: 1, useBias: false, kernelInitializer: init() }).apply(x);
  x = bn().apply(x);
  x = tf.layers.add().apply([skip, x]);
  // stride 2, SAME, odd size (17 → 9), depth multiplier 2 (12 → 24 channels), with bias
  x = tf.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, depthwiseInitializer: init(), biasInitializer: tf.initializers.randomNormal({ stddev: 0.1, seed: seedCounter++ }) }).apply(x);
  x = relu6().apply(bn().apply(x));
  // a regular Conv2D, stride 2, SAME on an odd size (9 → 5)
  x = tf.layers.conv2d({ filters: 16, kernelSize: 3, strides: 2, padding: 'same', useBias: false, kernelInitializer: init() }).apply(x);
  x = relu6('out_relu').apply(bn().apply(x));
  x = tf.layers.globalAveragePooling2d({}).apply(x);
  const out = tf.layers.dense({ units: 5, activation: 'softmax', kernelInitializer: init() }).apply(x);
  return tf.model({ inputs: input, outputs: out });
}

/**
 * InceptionV3 in miniature: Conv2D + BatchNormalization(scale false) +
 * Activation('relu'), a four-branch block (1x1, 3x3 SAME, 3x3 stride-1 SAME
 * MaxPooling2D, 3x3 stride-1 SAME AveragePooling2D + 1x1) joined by
 * Concatenate, MaxPooling2D VALID stride 2 and AveragePooling2D SAME stride 2
 * on odd sizes, Multiply, Flatten of a 4 x 4 x C tensor (NHWC order matters),
 * Dense + BatchNormalization + ReLU on vectors + Dropout + Dense softmax.
 */
function inceptionLike() {
  const input = tf.input({ shape: [31, 31, 3] });
  const scaled = tf.layers.rescaling({ scale: 1 / 255 }).apply(input);
  const convBn = (x, filters, k, opts = {}) => {
    const y = tf.layers.conv2d({ filters, kernelSize: k, padding: 'same', useBias: false, kernelInitializer: init(), ...opts }).apply(x);
    return tf.layers.activation({ activation: 'relu' }).apply(bn({ scale: false }).apply(y));
  };
  let x = convBn(scaled, 8, 3, { strides: 2, padding: 'valid' }); // 15 x 15
  const b1 = convBn(x, 4, 1);
  const b2 = convBn(convBn(x, 4, 1), 6, 3);
  const b3 = tf.layers.maxPooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(x);
  const b4 = convBn(tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }).apply(x), 3, 1);
  x = tf.layers.concatenate({ axis: -1 }).apply([b1, b2, b3, b4]); // 15 x 15 x 21
  x = tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'valid' }).apply(x); // 7 x 7
  x = tf.layers.averagePooling2d({ poolSize: 2, strides: 2, padding: 'same' }).apply(x); // 4 x 4, partial windows at the edge
  const gate = tf.layers.conv2d({ filters: 21, kernelSize: 1, activation: 'sigmoid', kernelInitializer: init() }).apply(x);
  x = tf.layers.multiply().apply([x, gate]);
  x = tf.layers.flatten({ name: 'flatten_1' }).apply(x); // 4 * 4 * 21 = 336
  x = tf.layers.dense({ units: 10, kernelInitializer: init(), biasInitializer: tf.initializers.randomNormal({ stddev: 0.1, seed: seedCounter++ }) }).apply(x);
  x = tf.layers.reLU().apply(bn().apply(x)); // BatchNormalization and ReLU on vectors
  x = tf.layers.dropout({ rate: 0.5 }).apply(x);
  const out = tf.layers.dense({ units: 4, activation: 'softmax', kernelInitializer: init() }).apply(x);
  return tf.model({ inputs: input, outputs: out });
}

/** Saves a model, converts it, and compares ONNX Runtime with `reference(x)` on random pixels. */
async function checkLayersModel(t, what, model, dir, { opts = {}, reference, n = 3 }) {
  await model.save(core.dirSaver(dir));
  const size = model.inputs[0].shape[1];
  const conv = await core.convertTfjsModel(dir, opts);
  checkStructure(what, conv.bytes);
  const px = randomPixels(n, size, seedCounter++);
  const out = await runOnnx(conv.bytes, px, [n, size, size, 3]);
  const ref = tf.tidy(() => reference(tf.tensor4d(px, [n, size, size, 3])).dataSync());
  assertClose(t, what, out.data, ref);
  return out;
}

test('layers models with the remote catalogue and InceptionV3 layer types convert and match tf predict', async (t) => {
  const dir = await tempDir(t);
  const n0 = tf.memory().numTensors;

  const mobile = mobilenetLike();
  const types = new Set(mobile.layers.map((l) => l.getClassName()));
  for (const c of ['Rescaling', 'ZeroPadding2D', 'Conv2D', 'BatchNormalization', 'ReLU', 'Activation', 'DepthwiseConv2D', 'Add', 'GlobalAveragePooling2D', 'Dense']) assert.ok(types.has(c), `mobilenet-like has ${c}`);
  const full = await checkLayersModel(t, 'mobilenet-like, full model (softmax)', mobile, path.join(dir, 'mobile'), { reference: (x) => mobile.predict(x) });
  assert.deepEqual(full.dims, [3, 5]);
  // As a catalogue backbone: cut at 'out_relu' (4-D) and pooled, with the [-1, 1] normalisation built in.
  const feat = tf.model({ inputs: mobile.inputs, outputs: mobile.getLayer('out_relu').output });
  const cut = await checkLayersModel(t, 'mobilenet-like, cut at out_relu + pool + normalise', mobile, path.join(dir, 'mobile-cut'), {
    opts: { output: 'out_relu', pool: true, normalise: { scale: 2 / 255, offset: -1 } },
    reference: (x) => tf.mean(feat.predict(tf.sub(tf.mul(x, 2 / 255), 1)), [1, 2]),
  });
  assert.deepEqual(cut.dims, [3, 16]);
  // Cut at a 4-D layer without pooling: NHWC out, as TF.js gives it.
  const unpooled = await checkLayersModel(t, 'mobilenet-like, cut at out_relu (4-D, NHWC out)', mobile, path.join(dir, 'mobile-4d'), {
    opts: { output: 'out_relu' },
    reference: (x) => feat.predict(x),
  });
  assert.deepEqual(unpooled.dims, [3, 5, 5, 16]);

  const inception = inceptionLike();
  const itypes = new Set(inception.layers.map((l) => l.getClassName()));
  for (const c of ['Activation', 'Concatenate', 'MaxPooling2D', 'AveragePooling2D', 'Multiply', 'Flatten', 'Dropout']) assert.ok(itypes.has(c), `inception-like has ${c}`);
  await checkLayersModel(t, 'inception-like, full model (Flatten of 4x4x21, softmax)', inception, path.join(dir, 'inception'), { reference: (x) => inception.predict(x) });
  const flat = tf.model({ inputs: inception.inputs, outputs: inception.getLayer('flatten_1').output });
  const flatOut = await checkLayersModel(t, 'inception-like, cut at flatten_1 (NHWC flatten order)', inception, path.join(dir, 'inception-flat'), {
    opts: { output: 'flatten_1' },
    reference: (x) => flat.predict(x),
  });
  assert.deepEqual(flatOut.dims, [3, 336]);

  // A Sequential conv model (the fixtures' tiny backbone: Conv2D relu, GlobalAveragePooling2D).
  const { tinyBackbone } = await import('./fixtures.mjs');
  const tinyJson = await tinyBackbone(path.join(dir, 'tiny'), { size: 32 });
  const tiny = await tf.loadLayersModel(core.dirLoader(path.dirname(tinyJson)));
  await checkLayersModel(t, 'sequential tiny backbone', tiny, path.join(dir, 'tiny-2'), { reference: (x) => tiny.predict(x) });

  mobile.dispose();
  inception.dispose();
  tiny.dispose();
  assert.equal(tf.memory().numTensors, n0, 'building, saving and converting left no tensors');
});

test('a trained head alone (Sequential Dense-Dropout-Dense from trainRun) converts and matches', async (t) => {
  const dir = await tempDir(t);
  // A tiny backbone keeps the run fast; the head is what is converted.
  const { tinyBackbone, colourDataset } = await import('./fixtures.mjs');
  const backbone = await tinyBackbone(path.join(dir, 'bb'));
  await colourDataset(path.join(dir, 'data'), { classes: { red: 'red', blue: 'blue', green: 'green' }, perClass: 6 });
  const runDir = path.join(dir, 'run');
  await core.trainRun({ data: path.join(dir, 'data'), out: runDir, backbone, cacheDir: path.join(dir, 'cache'), workers: 1, epochs: 3, batchSize: 8, hiddenUnits: 16, engine: 'tfjs' });
  const headDir = path.join(runDir, 'head');
  const json = JSON.parse(await readFile(path.join(headDir, 'model.json'), 'utf8'));
  const layers = (json.modelTopology.model_config ?? json.modelTopology).config.layers ?? (json.modelTopology.model_config ?? json.modelTopology).config;
  assert.deepEqual(layers.map((l) => l.class_name), ['Dense', 'Dropout', 'Dense']);
  const head = await tf.loadLayersModel(core.dirLoader(headDir));
  const fsz = head.inputs[0].shape[1];
  const conv = await core.convertTfjsModel(headDir);
  assert.deepEqual(conv.inputDims, ['N', fsz]);
  const n = 5;
  const rng = new core.Rng(4);
  const x = Float32Array.from({ length: n * fsz }, () => rng.next() * 3);
  const out = await runOnnx(conv.bytes, x, [n, fsz]);
  const ref = tf.tidy(() => head.predict(tf.tensor2d(x, [n, fsz])).dataSync());
  head.dispose();
  assert.deepEqual(out.dims, [n, 3]);
  assertClose(t, `trained head (${fsz} → 16 → 3, softmax)`, out.data, ref);
});

// ---- a hand-written TF graph model (GraphDef JSON) --------------------------------------

const s64 = (s) => Buffer.from(s).toString('base64');
const ints = (a) => ({ list: { i: a.map(String) } });

/**
 * A small frozen graph in TF.js graph-model JSON with the ops the converter
 * maps beyond the bundled MobileNet: Conv2D + BiasAdd, Relu / Relu6, Sub / Mul
 * by scalars and per-channel vectors, DepthwiseConv2dNative, MaxPool SAME
 * stride 2 on an odd size, Mean over H, W, Reshape, MatMul (+ transpose_b),
 * AddV2, _FusedMatMul and Softmax.
 */
async function writeGraphModel(dir, rng) {
  const consts = [];
  const rand = (shape, scale = 0.3) => Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rng.next() * 2 - 1) * scale);
  const node = [{ name: 'input', op: 'Placeholder', attr: { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '13' }, { size: '13' }, { size: '3' }] } } } }];
  const cnst = (name, shape, values, dtype = 'DT_FLOAT') => {
    consts.push({ name, shape, dtype: dtype === 'DT_INT32' ? 'int32' : 'float32', values });
    node.push({ name, op: 'Const', attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: shape.length ? { dim: shape.map((d) => ({ size: String(d) })) } : {} } } } });
    return name;
  };
  const op = (name, type, input, attr = {}) => (node.push({ name, op: type, input, attr: { T: { type: 'DT_FLOAT' }, ...attr } }), name);
  const conv = { padding: { s: s64('SAME') }, data_format: { s: s64('NHWC') }, dilations: ints([1, 1, 1, 1]) };
  let x = op('scaled', 'Mul', ['input', cnst('scale', [], Float32Array.of(1 / 255))]);
  x = op('centred', 'Sub', [x, cnst('half', [], Float32Array.of(0.5))]);
  x = op('conv1', 'Conv2D', [x, cnst('conv1/w', [3, 3, 3, 6], rand([3, 3, 3, 6]))], { ...conv, strides: ints([1, 2, 2, 1]) }); // 13 → 7
  x = op('conv1/bias', 'BiasAdd', [x, cnst('conv1/b', [6], rand([6], 0.1))], { data_format: { s: s64('NHWC') } });
  x = op('conv1/relu', 'Relu', [x]);
  x = op('bn/mul', 'Mul', [x, cnst('bn/gamma', [6], Float32Array.from(rand([6]), (v) => 1 + v))]);
  x = op('bn/add', 'AddV2', [x, cnst('bn/beta', [6], rand([6], 0.2))]);
  x = op('dw', 'DepthwiseConv2dNative', [x, cnst('dw/w', [3, 3, 6, 1], rand([3, 3, 6, 1]))], { ...conv, strides: ints([1, 1, 1, 1]) });
  x = op('dw/relu6', 'Relu6', [x]);
  x = op('pool', 'MaxPool', [x], { ksize: ints([1, 2, 2, 1]), strides: ints([1, 2, 2, 1]), padding: { s: s64('SAME') }, data_format: { s: s64('NHWC') } }); // 7 → 4
  const mean = op('mean', 'Mean', [x, cnst('mean/axes', [2], Int32Array.of(1, 2), 'DT_INT32')], { keep_dims: { b: false }, Tidx: { type: 'DT_INT32' } });
  const flat = op('flat', 'Reshape', [x, cnst('flat/shape', [2], Int32Array.of(-1, 96), 'DT_INT32')], { Tshape: { type: 'DT_INT32' } });
  const fc1 = op('fc1', 'MatMul', [flat, cnst('fc1/w', [6, 96], rand([6, 96], 0.2))], { transpose_a: { b: false }, transpose_b: { b: true } });
  const fc2 = op('fc2', 'MatMul', [mean, cnst('fc2/w', [6, 6], rand([6, 6]))], { transpose_a: { b: false }, transpose_b: { b: false } });
  x = op('sum', 'AddV2', [fc1, fc2]);
  x = op('logits', '_FusedMatMul', [x, cnst('fc3/w', [6, 4], rand([6, 4])), cnst('fc3/b', [4], rand([4], 0.1))], { transpose_a: { b: false }, transpose_b: { b: false }, fused_ops: { list: { s: [s64('BiasAdd')] } }, num_args: { i: '1' } });
  op('probs', 'Softmax', [x]);
  const data = Buffer.concat(consts.map((c) => Buffer.from(c.values.buffer, c.values.byteOffset, c.values.byteLength)));
  const json = {
    format: 'graph-model',
    generatedBy: 'headstart test',
    convertedBy: 'hand-written',
    modelTopology: { node, library: {}, versions: { producer: 1 } },
    weightsManifest: [{ paths: ['weights.bin'], weights: consts.map(({ name, shape, dtype }) => ({ name, shape, dtype })) }],
  };
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'model.json'), JSON.stringify(json));
  await writeFile(path.join(dir, 'weights.bin'), data);
  return json;
}

test('a hand-written graph model (Conv2D, BiasAdd, Relu6, Depthwise, MaxPool, Mean, Reshape, MatMul, _FusedMatMul, Softmax) converts and matches tf.loadGraphModel', async (t) => {
  const dir = await tempDir(t);
  await writeGraphModel(dir, new core.Rng(21));
  const model = await tf.loadGraphModel(core.dirLoader(dir));
  const n = 4;
  const px = randomPixels(n, 13, 5);
  const conv = await core.convertTfjsModel(dir);
  const out = await runOnnx(conv.bytes, px, [n, 13, 13, 3]);
  const ref = tf.tidy(() => model.execute(tf.tensor4d(px, [n, 13, 13, 3]), 'probs').dataSync());
  assert.deepEqual(out.dims, [n, 4]);
  assertClose(t, 'graph model, softmax output', out.data, ref);
  // Cut at an inner 4-D node and pooled, as a graph backbone's feature node would be.
  const cut = await core.convertTfjsModel(dir, { output: 'dw/relu6', pool: true });
  const outCut = await runOnnx(cut.bytes, px, [n, 13, 13, 3]);
  const refCut = tf.tidy(() => tf.mean(model.execute(tf.tensor4d(px, [n, 13, 13, 3]), 'dw/relu6'), [1, 2]).dataSync());
  assertClose(t, 'graph model, cut at dw/relu6 + pool', outCut.data, refCut);
  model.dispose();
});

// ---- unsupported operations ----------------------------------------------------------------

async function assertBadModel(dir, op, node) {
  await assert.rejects(core.convertTfjsModel(dir), (err) => {
    assert.ok(err instanceof core.HeadstartError, `a HeadstartError, got ${err?.constructor?.name}: ${err?.message}`);
    assert.equal(err.code, 'BAD_MODEL');
    assert.ok(err.message.includes(op), `names the op ${op}: ${err.message}`);
    assert.ok(err.message.includes(node), `names the node ${node}: ${err.message}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    return true;
  });
}

test('unsupported operations: BAD_MODEL naming the op and the node or layer (LSTM, Conv2DTranspose, a made-up graph op)', async (t) => {
  const dir = await tempDir(t);
  const n0 = tf.memory().numTensors;
  const seq = tf.sequential({ layers: [tf.layers.lstm({ units: 4, inputShape: [5, 3], name: 'my_lstm' }), tf.layers.dense({ units: 2 })] });
  await seq.save(core.dirSaver(path.join(dir, 'lstm')));
  seq.dispose();
  await assertBadModel(path.join(dir, 'lstm'), 'LSTM', 'my_lstm');

  const input = tf.input({ shape: [8, 8, 3] });
  const up = tf.layers.conv2dTranspose({ filters: 2, kernelSize: 3, strides: 2, name: 'upsample_t' }).apply(tf.layers.conv2d({ filters: 4, kernelSize: 3 }).apply(input));
  const m = tf.model({ inputs: input, outputs: up });
  await m.save(core.dirSaver(path.join(dir, 'deconv')));
  m.dispose();
  await assertBadModel(path.join(dir, 'deconv'), 'Conv2DTranspose', 'upsample_t');

  const graphDir = path.join(dir, 'graph');
  const json = await writeGraphModel(graphDir, new core.Rng(3));
  const relu = json.modelTopology.node.find((nd) => nd.name === 'conv1/relu');
  relu.op = 'FrobnicateV7';
  await writeFile(path.join(graphDir, 'model.json'), JSON.stringify(json));
  await assertBadModel(graphDir, 'FrobnicateV7', 'conv1/relu');
  assert.equal(tf.memory().numTensors, n0, 'failed conversions free their weights');
});
