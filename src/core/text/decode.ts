import { createHash } from 'node:crypto';

import { MAX_TEXT_BYTES } from '../../shared/options';

/** Largest text example in bytes: one value, in src/shared/options.ts (the editor's Classify Selection caps with it too). */
export { MAX_TEXT_BYTES };

/** A decoded text, or why its bytes were not read as text. */
export type Decoded = { ok: true; text: string; encoding: 'utf-8' | 'utf-8-bom' | 'utf-16le' | 'utf-16be' } | { ok: false; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf16le = new TextDecoder('utf-16le', { fatal: true, ignoreBOM: true });

/** Offset of the first byte that is not valid UTF-8 (for the skip reason). */
function badUtf8Offset(buf: Uint8Array): number {
  let lo = 0;
  let hi = buf.length;
  // Bisection on prefixes: a prefix that decodes (a partial character at its end aside) holds no bad byte.
  while (hi - lo > 4) {
    const mid = (lo + hi) >> 1;
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(0, mid), { stream: true });
      lo = mid;
    } catch {
      hi = mid; // the bad byte is in the first half: narrow there
    }
  }
  return lo;
}

/**
 * Decodes the bytes of one text: UTF-8 with or without a BOM, UTF-16 LE/BE
 * with a BOM. Anything else (invalid UTF-8, NUL bytes of a binary file, an odd
 * UTF-16 length) is refused with a reason a user can act on. The result is
 * NFC-normalised with line ends as \n; surrounding whitespace is kept.
 */
export function decodeText(buf: Uint8Array): Decoded {
  let text: string;
  let encoding: 'utf-8' | 'utf-8-bom' | 'utf-16le' | 'utf-16be';
  try {
    if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
      encoding = 'utf-8-bom';
      text = utf8.decode(buf.subarray(3));
    } else if ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff)) {
      encoding = buf[0] === 0xff ? 'utf-16le' : 'utf-16be';
      const body = buf.subarray(2);
      if (body.length % 2) return { ok: false, reason: 'UTF-16 text with an odd number of bytes (truncated?); save it again as UTF-8' };
      // Big-endian: swap each byte pair, then decode as little-endian.
      const le = encoding === 'utf-16le' ? body : Buffer.from(body).swap16();
      text = utf16le.decode(le);
    } else {
      encoding = 'utf-8';
      text = utf8.decode(buf);
    }
  } catch {
    // The decoder's own message names no offset: find it for the reason.
    return { ok: false, reason: `not UTF-8 text (invalid byte near offset ${badUtf8Offset(buf)}); save it as UTF-8, or UTF-16 with a BOM` };
  }
  if (text.includes('\u0000')) return { ok: false, reason: 'contains NUL characters: a binary file, not text' };
  return { ok: true, text: text.normalize('NFC').replace(/\r\n?/g, '\n'), encoding };
}

/** Why a text is not a usable example (empty, whitespace only, over the cap), or undefined. */
export function textRefusal(text: string, maxBytes = MAX_TEXT_BYTES): string | undefined {
  if (!text.trim()) return text.length ? 'whitespace only: no text to learn from' : 'empty: no text to learn from';
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxBytes) return `text is ${bytes} bytes, over the ${maxBytes}-byte limit for one example; split it into examples or shorten it`;
  return undefined;
}

/**
 * The form two texts are compared in for duplicates: NFKC, lower-case,
 * every run of whitespace as one space, trimmed. "Hello  World" and
 * "hello world\n" are the same example.
 */
export function normaliseForDuplicates(text: string): string {
  return text.normalize('NFKC').toLowerCase().replace(/\s+/gu, ' ').trim();
}

/** Content hash of a text for duplicate grouping and splits (of its normalised form). */
export function textContentHash(text: string): string {
  return createHash('sha256').update('text\u0000').update(normaliseForDuplicates(text)).digest('hex');
}

/** Hash of the exact text an embedder reads (the embedding cache's file name). */
export function textExactHash(text: string): string {
  return createHash('sha256').update('text-exact\u0000').update(text).digest('hex');
}
