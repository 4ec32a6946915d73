/**
 * The backbone catalogue: pretrained image models Headstart can build on.
 * Bundled entries ship inside the install (converted at build time from the
 * `nsfwjs` npm package); remote entries are downloaded on first use.
 */
export interface BackboneFile {
  /** Path relative to the model folder. */
  path: string;
  /** Size in bytes, where known in advance. */
  bytes?: number;
  /** sha256 hex, where known in advance. */
  sha256?: string;
}

/**
 * How pixels reach a foreign ONNX model (`--backbone model.onnx`), fully
 * resolved: Headstart decodes each image to RGB 0..255, centre-crops it to a
 * square and resizes it to `size`, then maps 0..255 linearly onto `range`,
 * reorders channels, subtracts `mean` and divides by `std` (per input
 * channel, in the model's channel order, in `range` units), and lays the
 * tensor out as `layout`. The feature output is `output`, globally pooled
 * when it is a 4-D map (in the input's layout).
 */
export interface OnnxInputSpec {
  /** Name of the graph input that takes the image. */
  input: string;
  /** Square side in pixels. */
  size: number;
  layout: 'NCHW' | 'NHWC';
  /** 3 (colour) or 1 (grey: Rec. 601 luma of the RGB pixels). */
  channels: 1 | 3;
  channelOrder: 'RGB' | 'BGR';
  /** [0,1], [0,255] or [-1,1]. */
  range: [number, number];
  /** Per channel (length `channels`), in `range` units. */
  mean: number[];
  std: number[];
  /** The only policy this version has: centre-crop to a square, then resize (as every Headstart backbone). */
  resize: 'centre-crop';
  /** Graph output (or any tensor) holding the features. */
  output: string;
  /** Global pooling of a 4-D output. */
  pooling: 'avg' | 'max';
  /** 1 when the model's graph only runs one image at a time (a batch fixed to 1). */
  batch?: 1;
}

export interface BackboneEntry {
  id: string;
  title: string;
  task: 'image';
  /**
   * 'graph': a frozen TF graph model; 'layers': a Keras-style layers model that can be partly unfrozen;
   * 'onnx': an ONNX feature extractor (a slimmed backbone, or a foreign ONNX model with `onnxInput`), run by ONNX Runtime only.
   */
  format: 'graph' | 'layers' | 'onnx';
  /** Square input size in pixels. */
  inputSize: number;
  /** Pixel range the model expects: [0,1] or [-1,1]. Input pixels 0..255 map linearly onto it. */
  inputRange: [number, number];
  /** Graph: the node whose output is the feature vector. Layers: the layer name. */
  featureNode: string;
  /** Layers models: global-average-pool the feature layer's 4-D output into a vector. */
  pool?: boolean;
  /** Length of the feature vector. */
  featureSize: number;
  licence: string;
  /** Where the weights come from, for the model card. */
  source: string;
  /** Bundled: ships with the install. Remote: `url` of model.json, downloaded on first use. */
  bundled: boolean;
  url?: string;
  /**
   * Remote entries: files whose bytes and sha256 are pinned; a download that
   * differs is refused. Files not listed are recorded at download (files.json)
   * and verified against that record on every load from the cache.
   */
  files?: BackboneFile[];
  /** Approximate size of all files, bytes (known exactly for bundled entries after build). */
  approxBytes: number;
  /**
   * Foreign ONNX models: how pixels reach the model. Catalogue entries give
   * what their publisher documents; the rest is read from the graph.
   */
  onnxInput?: Partial<OnnxInputSpec>;
}

export const DEFAULT_BACKBONE = 'mobilenet-v2-140';

const TFHUB_NODE = 'StatefulPartitionedCall/sequential/keras_layer/StatefulPartitionedCall/StatefulPartitionedCall/StatefulPartitionedCall/predict/feature_vector/SpatialSqueeze';

const bundled: BackboneEntry[] = [
  {
    id: 'mobilenet-v2-140',
    title: 'MobileNetV2 1.4 (ImageNet feature vector)',
    task: 'image',
    format: 'graph',
    inputSize: 224,
    inputRange: [0, 1],
    featureNode: TFHUB_NODE,
    featureSize: 1792,
    licence: 'Apache-2.0 (TF-Hub MobileNetV2 weights), packaged by nsfwjs (MIT)',
    source: 'npm nsfwjs@4.3.0 dist/models/mobilenet_v2_mid (uint8-quantized weights)',
    bundled: true,
    approxBytes: 4_430_000,
  },
  {
    id: 'mobilenet-v2-100',
    title: 'MobileNetV2 1.0 (layers; top blocks tuned by nsfwjs)',
    task: 'image',
    format: 'layers',
    inputSize: 224,
    inputRange: [0, 1],
    featureNode: 'flatten_1',
    featureSize: 1280,
    licence: 'MIT (nsfwjs); MobileNetV2 ImageNet weights Apache-2.0',
    source: 'npm nsfwjs@4.3.0 dist/models/mobilenet_v2 (uint8-quantized weights)',
    bundled: true,
    approxBytes: 2_380_000,
  },
  {
    id: 'inception-v3',
    title: 'InceptionV3 (layers, 299 px)',
    task: 'image',
    format: 'layers',
    inputSize: 299,
    inputRange: [0, 1],
    featureNode: 'flatten_1',
    featureSize: 2048,
    licence: 'MIT (nsfwjs); InceptionV3 ImageNet weights Apache-2.0',
    source: 'npm nsfwjs@4.3.0 dist/models/inception_v3 (uint8-quantized weights)',
    bundled: true,
    approxBytes: 22_000_000,
  },
];

const v1: BackboneEntry[] = (['0.25', '0.50', '0.75', '1.0'] as const).map((alpha) => ({
  id: `mobilenet-v1-${(Number(alpha) * 100).toFixed(0).padStart(3, '0')}`,
  title: `MobileNet v1 ${alpha} (Teachable Machine's backbone)`,
  task: 'image',
  format: 'layers',
  inputSize: 224,
  inputRange: [-1, 1],
  featureNode: 'conv_pw_13_relu',
  pool: true,
  featureSize: Math.round(1024 * Number(alpha)),
  licence: 'Apache-2.0',
  source: 'TensorFlow.js models (storage.googleapis.com/tfjs-models)',
  bundled: false,
  url: `https://storage.googleapis.com/tfjs-models/tfjs/mobilenet_v1_${alpha}_224/model.json`,
  approxBytes: Math.round(17_000_000 * Number(alpha) * Number(alpha)) + 500_000,
}));

const v2: BackboneEntry[] = (['0.35', '0.50', '0.75', '1.00'] as const).map((alpha) => ({
  id: `mobilenet-v2-${alpha.replace('.', '')}-tm`,
  title: `MobileNetV2 ${alpha} (Teachable Machine, ImageNet)`,
  task: 'image',
  format: 'layers',
  inputSize: 224,
  inputRange: [-1, 1],
  featureNode: 'out_relu',
  pool: true,
  featureSize: 1280,
  licence: 'Apache-2.0',
  source: 'Teachable Machine models (storage.googleapis.com/teachable-machine-models)',
  bundled: false,
  url: `https://storage.googleapis.com/teachable-machine-models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_${alpha}_224_no_top/model.json`,
  approxBytes: Math.round(9_000_000 * Number(alpha)) + 1_000_000,
}));

const IMAGENET = { range: [0, 1] as [number, number], mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
const ZOO = 'https://github.com/onnx/models/raw/main/validated/vision/classification';

/**
 * Published ONNX models, run by ONNX Runtime as foreign backbones (the same
 * path as `--backbone model.onnx`): downloaded on first use; their sha256 is
 * recorded at download and checked on every load (none is pinned here: the
 * publishers list sizes, not checksums). Input names and layouts are read
 * from the graph; what the publisher documents is given in `onnxInput`.
 */
const onnxModels: BackboneEntry[] = [
  {
    id: 'dinov2-small-onnx',
    title: 'DINOv2 ViT-S/14 (self-supervised, 384-d; ONNX)',
    task: 'image',
    format: 'onnx',
    inputSize: 224,
    inputRange: [0, 1],
    featureNode: 'pooler_output',
    featureSize: 384,
    licence: 'Apache-2.0 (facebook/dinov2-small weights; ONNX export by Xenova for Transformers.js)',
    source: 'Hugging Face Xenova/dinov2-small, onnx/model.onnx (88.5 MB as published)',
    bundled: false,
    url: 'https://huggingface.co/Xenova/dinov2-small/resolve/main/onnx/model.onnx',
    approxBytes: 88_500_000,
    // The image processor: resize, centre-crop 224, rescale 1/255, ImageNet mean/std; its input's spatial size is dynamic.
    onnxInput: { ...IMAGENET, size: 224, layout: 'NCHW', output: 'pooler_output' },
  },
  {
    id: 'mobilenet-v2-onnx-zoo',
    title: 'MobileNetV2 1.0 (ONNX Model Zoo; 1000 ImageNet scores as features)',
    task: 'image',
    format: 'onnx',
    inputSize: 224,
    inputRange: [0, 1],
    featureNode: '(last output)',
    featureSize: 1000,
    licence: 'Apache-2.0 (ONNX Model Zoo, vision/classification/mobilenet)',
    source: 'ONNX Model Zoo mobilenetv2-7.onnx (13.6 MB as published; MXNet Gluon export)',
    bundled: false,
    url: `${ZOO}/mobilenet/model/mobilenetv2-7.onnx`,
    approxBytes: 13_600_000,
    onnxInput: { ...IMAGENET },
  },
  {
    id: 'efficientnet-lite4-onnx-zoo',
    title: 'EfficientNet-Lite4 (ONNX Model Zoo; 1000 ImageNet probabilities as features)',
    task: 'image',
    format: 'onnx',
    inputSize: 224,
    inputRange: [0, 255],
    featureNode: '(last output)',
    featureSize: 1000,
    licence: 'Apache-2.0 (TensorFlow EfficientNet-Lite weights; converted by the ONNX Model Zoo)',
    source: 'ONNX Model Zoo efficientnet-lite4-11.onnx (51.9 MB as published; tf2onnx export, batch fixed to 1)',
    bundled: false,
    url: `${ZOO}/efficientnet-lite4/model/efficientnet-lite4-11.onnx`,
    approxBytes: 51_900_000,
    // The zoo's preprocessing: RGB 224x224 NHWC, (pixel - 127) / 128.
    onnxInput: { range: [0, 255], mean: [127, 127, 127], std: [128, 128, 128], layout: 'NHWC' },
  },
];

/** Every catalogue entry, bundled first. */
export const CATALOGUE: readonly BackboneEntry[] = [...bundled, ...v1, ...v2, ...onnxModels];

export function findBackbone(id: string): BackboneEntry | undefined {
  return CATALOGUE.find((e) => e.id === id);
}
