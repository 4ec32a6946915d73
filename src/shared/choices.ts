/**
 * The choices the extension offers for the engine and for exports, as unions
 * of string literals with their lists (plain data; both protocols use them,
 * and the host checks what the webview sends against these lists).
 */

/** TensorFlow.js backend choices of the `headstart.backend` setting. */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
/** What runs the frozen backbone (`headstart.engine`). */
export type EngineChoice = 'auto' | 'onnx' | 'tfjs';
/** Weight storage of an export that the extension offers; int8 is static QDQ int8 and needs the ONNX format. */
export const QUANTIZE_CHOICES = ['none', 'float16', 'uint16', 'uint8', 'int8', 'auto'] as const;
export type QuantizeChoice = (typeof QUANTIZE_CHOICES)[number];
/** Model format of an export. */
export const EXPORT_FORMATS = ['tfjs', 'onnx'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];
/** Head family: auto (cross-validated linear vs one hidden layer), linear, or one hidden layer ('mlp'). */
export const HEAD_CHOICES = ['auto', 'linear', 'mlp'] as const;
export type HeadChoice = (typeof HEAD_CHOICES)[number];
/** Backbone slimming of an ONNX export: the engine's `'auto' | fraction`, or off. */
export type SlimChoice = 'off' | 'auto' | number;
/** Largest fraction of hidden channels `slim` may remove (the engine's limit). */
export const SLIM_MAX_FRACTION = 0.9;
