/**
 * The word tokenizer of the average-word-embedding backbone and of the TF-IDF
 * baseline. Documented rules (tests hold them):
 *
 * 1. The text is NFKC-normalised and lower-cased (locale-independent); the
 *    typographic apostrophes ’ ‘ ʼ become '.
 * 2. A token is a run of Unicode letters, marks and digits, which may be
 *    joined by single inner apostrophes or hyphens: "don't", "e-mail",
 *    "état", "mp3". A number may carry inner '.' or ',' ("3.5", "1,000").
 *    Everything else (punctuation, symbols, emoji, spaces) separates tokens.
 * 3. A token without a letter is a number: the TF-IDF baseline uses it; the
 *    word vectors have none, so it is neither averaged nor counted in coverage.
 * 4. Lookup of a word in the vocabulary ({@link wordKeys}): the word itself;
 *    else a hyphenated word as its parts ("state-of-the-art" → state, of,
 *    the, art); else a word with an apostrophe as the part before it, with
 *    "n't" read as "not" ("don't" → do, not; "can't" → can, not;
 *    "company's" → company).
 */
export const TOKENIZER_VERSION = 1;
export const TOKENIZER_DESCRIPTION = 'NFKC, lower-case; runs of Unicode letters/marks/digits joined by inner apostrophes or hyphens; numbers kept for TF-IDF but not embedded; unknown hyphenated words split into parts; clitics dropped, n\'t read as not';

/** The token pattern (rule 2); the exported inference script is generated from it. */
export const TOKEN_RE = /\p{N}+(?:[.,]\p{N}+)+|[\p{L}\p{M}\p{N}]+(?:['-][\p{L}\p{M}\p{N}]+)*/gu;
const HAS_LETTER = /\p{L}/u;

/** Lower-cased tokens of a text, in order (rules 1–2). */
export function tokenize(text: string): string[] {
  return text.normalize('NFKC').toLowerCase().replace(/[’‘ʼ]/g, "'").match(TOKEN_RE) ?? [];
}

/** True for a word token (one with a letter); false for a number. */
export function isWord(token: string): boolean {
  return HAS_LETTER.test(token);
}

/** Stems of negative contractions whose written stem differs: can't, won't, shan't. */
export const NEG_STEMS: Record<string, string> = { ca: 'can', wo: 'will', sha: 'shall' };

/**
 * The vocabulary words a word token stands for (rule 4). `known` says
 * whether a word is in the vocabulary. Returns the token itself when none of
 * the fallbacks applies (it then counts as unknown).
 */
export function wordKeys(token: string, known: (w: string) => boolean): string[] {
  if (known(token)) return [token];
  if (token.includes('-')) return token.split('-').filter((p) => p && isWord(p)).flatMap((p) => wordKeys(p, known));
  const apos = token.indexOf("'");
  if (apos > 0) {
    if (token.endsWith("n't")) {
      const stem = token.slice(0, -3);
      return [NEG_STEMS[stem] ?? stem, 'not'];
    }
    return [token.slice(0, apos)];
  }
  return [token];
}
