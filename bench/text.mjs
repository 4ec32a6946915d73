// Text classification figures (issue 13) on generated support tickets
// (src/core/text/sample.ts): texts/s embedded with the bundled word vectors
// (cold: nothing cached; warm: every text in the embedding cache), head
// seconds (cross-validated selection), test accuracy against the TF-IDF
// baseline on the same split at two sizes, and export sizes (float32 and the
// auto variant, TF.js and ONNX). Templated tickets favour TF-IDF: each intent
// has a handful of keyword slots, which a bag of words reads directly.
// `node bench/run.mjs --only-text` runs this section alone.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

/** Texts per size: 4 intents, a quarter each. */
export const TEXT_SIZES = [120, 400];

export async function textBench(core, work, fig, timeCli) {
  // The vocabulary loads once per process (5.6 MB, checked against its manifest): timed apart from embedding.
  let t0 = performance.now();
  const e = await core.openTextBackbone('glove-100d-avg', path.join(work, 'cache-text-models'));
  fig('text.vocabularyLoadSeconds', (performance.now() - t0) / 1000);
  for (const n of TEXT_SIZES) {
    const k = `text.n${n}`;
    const data = path.join(work, `tickets-${n}`);
    await core.makeTextSample(data, { perClass: n / 4, seed: 13 });
    const ds = await core.discoverTextDataset(data);
    const cache = path.join(work, `cache-text-${n}`);
    const items = ds.samples.map((s) => ({ exact: s.exact, text: s.text }));
    t0 = performance.now();
    const cold = await core.embedTexts(e, items, cache);
    const coldS = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const warm = await core.embedTexts(e, items, cache);
    const warmS = (performance.now() - t0) / 1000;
    fig(`${k}.embed.coldTextsPerSecond`, cold.computed / coldS);
    fig(`${k}.embed.warmTextsPerSecond`, warm.cached / warmS);
    // Training through the CLI on a fresh cache (the figures a user sees; run.json holds them).
    const runDir = path.join(work, `text-run-${n}`);
    const tr = timeCli(['train', data, '--out', runDir, '--cache', path.join(work, `cache-text-train-${n}`)]);
    const rec = JSON.parse(await readFile(path.join(runDir, 'run.json'), 'utf8'));
    fig(`${k}.train.seconds`, tr.seconds);
    fig(`${k}.head.selectionSeconds`, rec.selection?.seconds ?? null);
    fig(`${k}.head.trainSeconds`, rec.timings.trainSeconds);
    fig(`${k}.head.chosen`, rec.selection?.chosen ?? null);
    fig(`${k}.testTexts`, rec.test.count);
    fig(`${k}.accuracy`, { backbone: rec.test.accuracy, interval: [rec.test.interval.low, rec.test.interval.high], tfidf: rec.baseline.accuracy, tfidfInterval: [rec.baseline.interval.low, rec.baseline.interval.high] });
    fig(`${k}.coverage`, rec.text.coverage.tokens);
    if (n !== TEXT_SIZES.at(-1)) continue;
    for (const format of ['tfjs', 'onnx']) {
      const ex = timeCli(['export', runDir, '--out', path.join(work, `text-export-${format}`), '--format', format, '--quantize', 'auto', '--cache', cache]).json;
      const kk = `text.export.${format}`;
      fig(`${kk}.chosen`, ex.chosen);
      for (const [who, v] of [['float32', ex.float32], ['auto', ex.exported]]) fig(`${kk}.${who}`, { bytes: v.bytes, gzipBytes: v.gzipBytes, accuracy: v.accuracy, interval: [v.interval.low, v.interval.high], msPerText: v.msPerImage });
      fig(`${kk}.headBytes`, { float32: ex.head.float32.bytes, auto: ex.head.exported.bytes });
    }
  }
  e.dispose();
}
