/**
 * Building HTML from values that may be hostile (labels, paths, and the
 * numbers of a run.json, which can hold any JSON). No DOM and no `vscode`:
 * the webview and the host both use it, and node:test checks it.
 */

/** `s` with the five HTML-special characters as character references (safe in text and quoted attributes). */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Markup that is already safe: made by {@link html} (or {@link trusted} for constant markup). */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

/** Constant markup written in the code (never a value from a message). */
export const trusted = (markup: string): SafeHtml => new SafeHtml(markup);

function part(v: unknown): string {
  if (v instanceof SafeHtml) return v.value;
  if (Array.isArray(v)) return v.map(part).join('');
  if (v === undefined || v === null || v === false) return '';
  return escapeHtml(String(v));
}

/**
 * Tagged template: every interpolated value is escaped unless it is
 * {@link SafeHtml}; arrays are joined; undefined, null and false vanish.
 * A number field that holds `<img onerror=…>` comes out as text.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += part(v) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** `x` with `digits` decimals, or '–' when it is not a finite number (never its raw text). */
export function fixed(x: unknown, digits: number): string {
  const n = typeof x === 'number' ? x : Number.NaN;
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

/** A whole count, or '–' when `x` is not a finite number. */
export function count(x: unknown): string {
  return fixed(x, 0);
}
