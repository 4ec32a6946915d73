/**
 * The choices the extension offers for the engine and for exports, as unions
 * of string literals (plain data; both protocols use them), derived from the
 * lists in ./options.ts.
 */
import type { BACKEND_CHOICES, ENGINE_CHOICES, FORMAT_CHOICES, QUANTIZE_CHOICES } from './options';

/** TensorFlow.js backend choices of the `headstart.backend` setting. */
export type BackendChoice = (typeof BACKEND_CHOICES)[number];
/** What runs the frozen backbone (`headstart.engine`). */
export type EngineChoice = (typeof ENGINE_CHOICES)[number];
/** Weight storage of an export that the extension offers. */
export type QuantizeChoice = Exclude<(typeof QUANTIZE_CHOICES)[number], 'int8'>;
/** Model format of an export. */
export type ExportFormat = (typeof FORMAT_CHOICES)[number];
