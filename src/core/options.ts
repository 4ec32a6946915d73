/**
 * Parsing and checking of the numeric options of every command, over the one
 * table in src/shared/options.ts. Messages name the flag, its range and
 * what was given: "--epochs must be a whole number from 1 to 1000 (got -1)".
 */
import { HeadstartError } from './errors';
import { type NumericOption, type NumericOptionName, NUMERIC_OPTIONS } from '../shared/options';

export { type NumericOption, type NumericOptionName, MAX_SEED, NUMERIC_OPTIONS, BACKEND_CHOICES, ENGINE_CHOICES, FORMAT_CHOICES, HEAD_CHOICES, QUANTIZE_CHOICES, runStamp } from '../shared/options';

/** The range of an option in words: "a whole number from 1 to 1000", "a number greater than 0 and at most 1". */
export function describeRange(name: NumericOptionName): string {
  const o: NumericOption = NUMERIC_OPTIONS[name];
  const kind = o.int ? 'a whole number' : 'a number';
  if (!o.minExclusive && !o.maxExclusive) return `${kind} from ${o.min} to ${o.max}`;
  const lo = o.minExclusive ? `greater than ${o.min}` : `at least ${o.min}`;
  const hi = o.maxExclusive ? `less than ${o.max}` : `at most ${o.max}`;
  return `${kind} ${lo} and ${hi}`;
}

function refuse(name: NumericOptionName, got: string): never {
  throw new HeadstartError('BAD_INPUT', `${NUMERIC_OPTIONS[name].label} must be ${describeRange(name)} (got ${got})`);
}

/** Checks a value against its option's range; returns it. Throws BAD_INPUT naming the flag otherwise. */
export function checkOption(name: NumericOptionName, value: unknown, given?: string): number {
  const o: NumericOption = NUMERIC_OPTIONS[name];
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!o.int || Number.isInteger(value)) &&
    (o.minExclusive ? value > o.min : value >= o.min) &&
    (o.maxExclusive ? value < o.max : value <= o.max);
  if (!ok) refuse(name, given ?? (typeof value === 'string' ? JSON.stringify(value) : String(value)));
  return value as number;
}

/** Plain decimal notation, optionally with an exponent: no hex, binary, octal, blanks, Infinity or NaN. */
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Parses a flag's text as a number of its option and checks its range.
 * `undefined` (flag not given) stays undefined.
 */
export function parseOption(name: NumericOptionName, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const shown = text && text.trim() === text ? text : JSON.stringify(text);
  if (!DECIMAL.test(text)) refuse(name, shown);
  return checkOption(name, Number(text), shown);
}

/** Checks the validation and test fractions together: each in range, and some images left to train on. */
export function checkSplit(val: number | undefined, test: number | undefined): void {
  const v = val === undefined ? NUMERIC_OPTIONS.val.default : checkOption('val', val);
  const t = test === undefined ? NUMERIC_OPTIONS.test.default : checkOption('test', test);
  if (v + t >= 1) throw new HeadstartError('BAD_INPUT', `--val plus --test must leave images to train on (below 1; got ${v} + ${t})`);
}
