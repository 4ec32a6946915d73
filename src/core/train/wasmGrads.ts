import * as tf from '@tensorflow/tfjs';

/**
 * Gradient kernels the TF.js wasm backend lacks (Conv2DBackpropFilter,
 * DepthwiseConv2dNativeBackpropFilter, DepthwiseConv2dNativeBackpropInput),
 * registered from TypeScript so the top of a backbone can be fine-tuned on
 * wasm. They are direct loops over the backend's memory (NHWC, float32):
 * the top of a MobileNet runs at 7x7, where this is fast. Checked against
 * finite differences and the CPU backend in test/unit.
 */
let registered = false;

interface WasmBackend {
  typedArrayFromHeap(t: tf.TensorInfo): Float32Array;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: unknown): boolean;
}

type Kernel = (args: { inputs: tf.NamedTensorInfoMap; backend: WasmBackend; attrs: Record<string, unknown> }) => tf.TensorInfo;

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

function conv2dBackpropFilter(x: Float32Array, dy: Float32Array, info: tf.backend_util.Conv2DInfo, out: Float32Array): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: CI, outHeight: OH, outWidth: OW, outChannels: CO, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: FH, filterWidth: FW } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  out.fill(0);
  for (let b = 0; b < N; b++) {
    for (let r = 0; r < OH; r++) {
      for (let c = 0; c < OW; c++) {
        const dyOff = ((b * OH + r) * OW + c) * CO;
        for (let fh = 0; fh < FH; fh++) {
          const xr = r * sh + fh * dh - top;
          if (xr < 0 || xr >= H) continue;
          for (let fw = 0; fw < FW; fw++) {
            const xc = c * sw + fw * dw - left;
            if (xc < 0 || xc >= W) continue;
            const xOff = ((b * H + xr) * W + xc) * CI;
            const wBase = (fh * FW + fw) * CI;
            for (let ci = 0; ci < CI; ci++) {
              const xv = x[xOff + ci]!;
              if (xv === 0) continue; // post-ReLU activations are often zero
              const wOff = (wBase + ci) * CO;
              for (let co = 0; co < CO; co++) out[wOff + co]! += xv * dy[dyOff + co]!;
            }
          }
        }
      }
    }
  }
}

function depthwiseBackpropFilter(x: Float32Array, dy: Float32Array, info: tf.backend_util.Conv2DInfo, out: Float32Array): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: FH, filterWidth: FW } = info;
  const M = CO / C;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  out.fill(0);
  for (let b = 0; b < N; b++) {
    for (let r = 0; r < OH; r++) {
      for (let c = 0; c < OW; c++) {
        const dyOff = ((b * OH + r) * OW + c) * CO;
        for (let fh = 0; fh < FH; fh++) {
          const xr = r * sh + fh * dh - top;
          if (xr < 0 || xr >= H) continue;
          for (let fw = 0; fw < FW; fw++) {
            const xc = c * sw + fw * dw - left;
            if (xc < 0 || xc >= W) continue;
            const xOff = ((b * H + xr) * W + xc) * C;
            const wOff = (fh * FW + fw) * C * M;
            for (let ch = 0; ch < C; ch++) {
              const xv = x[xOff + ch]!;
              for (let m = 0; m < M; m++) out[wOff + ch * M + m]! += xv * dy[dyOff + ch * M + m]!;
            }
          }
        }
      }
    }
  }
}

function depthwiseBackpropInput(dy: Float32Array, filter: Float32Array, info: tf.backend_util.Conv2DInfo, out: Float32Array): void {
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, filterHeight: FH, filterWidth: FW } = info;
  const M = CO / C;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  out.fill(0);
  for (let b = 0; b < N; b++) {
    for (let r = 0; r < OH; r++) {
      for (let c = 0; c < OW; c++) {
        const dyOff = ((b * OH + r) * OW + c) * CO;
        for (let fh = 0; fh < FH; fh++) {
          const xr = r * sh + fh * dh - top;
          if (xr < 0 || xr >= H) continue;
          for (let fw = 0; fw < FW; fw++) {
            const xc = c * sw + fw * dw - left;
            if (xc < 0 || xc >= W) continue;
            const xOff = ((b * H + xr) * W + xc) * C;
            const wOff = (fh * FW + fw) * C * M;
            for (let ch = 0; ch < C; ch++) {
              let acc = 0;
              for (let m = 0; m < M; m++) acc += dy[dyOff + ch * M + m]! * filter[wOff + ch * M + m]!;
              out[xOff + ch]! += acc;
            }
          }
        }
      }
    }
  }
}

/** A kernel the wasm backend already has, called with one output. */
function wasmKernel(name: string): (args: { inputs: tf.NamedTensorInfoMap; backend: WasmBackend; attrs: tf.NamedAttrMap }) => tf.TensorInfo {
  const k = tf.getKernel(name, 'wasm')!.kernelFunc;
  return (args) => k(args) as tf.TensorInfo; // Reshape and BatchMatMul return one tensor
}

/** Registers the missing gradient kernels on the wasm backend (once per process). */
export function registerWasmGradients(): void {
  if (registered) return;
  registered = true;
  const have = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
  const reg = (kernelName: string, fn: Kernel) => {
    if (have.has(kernelName)) return;
    // TF.js hands every kernel its backend as `{}`; on 'wasm' it is the wasm backend.
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: ({ inputs, backend, attrs }) => fn({ inputs, backend: backend as WasmBackend, attrs: attrs ?? {} }) });
  };
  reg('Conv2DBackpropFilter', ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const a = attrs as { strides: [number, number] | number; pad: Pad; dataFormat: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
    if (a.dataFormat === 'NCHW') throw new Error('Conv2DBackpropFilter (wasm, Headstart): NCHW is not supported');
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad as 'same', a.dimRoundingMode, false, 'channelsLast');
    if (info.filterHeight === 1 && info.filterWidth === 1 && info.strideHeight === 1 && info.strideWidth === 1 && info.padInfo.top === 0 && info.padInfo.left === 0) {
      // A 1x1 convolution's filter gradient is a matrix product: X^T (P x CI) · dY (P x CO), on XNNPACK.
      const reshape = wasmKernel('Reshape');
      const bmm = wasmKernel('BatchMatMul');
      const p = info.batchSize * info.outHeight * info.outWidth;
      const xa = reshape({ inputs: { x }, backend, attrs: { shape: [1, p, info.inChannels] } });
      const dyb = reshape({ inputs: { x: dy }, backend, attrs: { shape: [1, p, info.outChannels] } });
      const prod = bmm({ inputs: { a: xa, b: dyb }, backend, attrs: { transposeA: true, transposeB: false } });
      const out = reshape({ inputs: { x: prod }, backend, attrs: { shape: a.filterShape } });
      for (const t of [xa, dyb, prod]) backend.disposeData(t.dataId);
      return out;
    }
    const out = backend.makeOutput(a.filterShape, 'float32');
    conv2dBackpropFilter(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(dy), info, backend.typedArrayFromHeap(out));
    return out;
  });
  reg('DepthwiseConv2dNativeBackpropFilter', ({ inputs, backend, attrs }) => {
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const a = attrs as { strides: [number, number] | number; dilations: [number, number] | number; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, a.dilations, a.pad as 'same', a.dimRoundingMode, true);
    const out = backend.makeOutput(a.filterShape, 'float32');
    depthwiseBackpropFilter(backend.typedArrayFromHeap(x), backend.typedArrayFromHeap(dy), info, backend.typedArrayFromHeap(out));
    return out;
  });
  reg('DepthwiseConv2dNativeBackpropInput', ({ inputs, backend, attrs }) => {
    const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const a = attrs as { strides: [number, number] | number; dilations: [number, number] | number; pad: Pad; dimRoundingMode?: 'floor' | 'round' | 'ceil'; inputShape: [number, number, number, number] };
    const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, a.dilations, a.pad as 'same', a.dimRoundingMode, true);
    const out = backend.makeOutput(a.inputShape, 'float32');
    depthwiseBackpropInput(backend.typedArrayFromHeap(dy), backend.typedArrayFromHeap(filter), info, backend.typedArrayFromHeap(out));
    return out;
  });
}
