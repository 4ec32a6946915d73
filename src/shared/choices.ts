/**
 * The choices the extension offers for the engine and for exports, as unions
 * of string literals (plain data; both protocols use them, and the host checks
 * what the webview sends against these lists). The lists themselves live in
 * ./options.ts, the one source shared with the CLI and the engine.
 */
import { BACKEND_CHOICES, ENGINE_CHOICES, FORMAT_CHOICES, HEAD_CHOICES, QUANTIZE_CHOICES } from './options';

export { HEAD_CHOICES, QUANTIZE_CHOICES };
/** Model formats of an export (the same list as FORMAT_CHOICES). */
export const EXPORT_FORMATS = FORMAT_CHOICES;

/** TensorFlow.js backend choices of the `headstart.backend` setting. */
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
/** What runs the frozen backbone (`headstart.engine`). */
export type EngineChoice = (typeof ENGINE_CHOICES)[number];
/** Weight storage of an export; int8 is static QDQ int8 and needs the ONNX format. */
export type QuantizeChoice = (typeof QUANTIZE_CHOICES)[number];
/** Model format of an export. */
export type ExportFormat = (typeof FORMAT_CHOICES)[number];
/** Head family: auto (cross-validated linear vs one hidden layer), linear, or one hidden layer ('mlp'). */
export type HeadChoice = (typeof HEAD_CHOICES)[number];
/** Backbone slimming of an ONNX export: the engine's `'auto' | fraction`, or off. */
export type SlimChoice = 'off' | 'auto' | number;
/** Largest fraction of hidden channels `slim` may remove (the engine's limit). */
export const SLIM_MAX_FRACTION = 0.9;
