/**
 * The choices the extension offers for the engine and for exports, as unions
 * of string literals (plain data; both protocols use them).
 */

/** TensorFlow.js backend choices of the `headstart.backend` setting. */
export type BackendChoice = 'auto' | 'tensorflow' | 'wasm' | 'cpu';
/** What runs the frozen backbone (`headstart.engine`). */
export type EngineChoice = 'auto' | 'onnx' | 'tfjs';
/** Weight storage of an export that the extension offers. */
export type QuantizeChoice = 'none' | 'float16' | 'uint16' | 'uint8' | 'auto';
/** Model format of an export. */
export type ExportFormat = 'tfjs' | 'onnx';
