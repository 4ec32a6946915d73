/**
 * Markup of the results and export sections that carry the engine's figures:
 * accuracies with their n and 95% interval, the cross-validated head choice,
 * the baseline's verdict, and an export's choice, int8 speed and slimming
 * steps. No DOM here (node:test checks it): every value goes through html``
 * (escaped) or fixed()/count() (never a non-number's text).
 */
import { type SafeHtml, count, fixed, html, trusted } from '../src/shared/html';
import type { DatasetPreview, ExportView, ResultView, SelectionView } from '../src/shared/panelProtocol';
import type { Interval, LengthStats } from '../src/shared/records';
import { stepChart } from './charts';

const num = (x: unknown): number => (typeof x === 'number' ? x : Number.NaN);
export const pct = (x: unknown): string => `${fixed(num(x) * 100, 1)}%`;
export const mb = (b: unknown): string => `${fixed(num(b) / 1e6, 2)} MB`;

const hasInterval = (iv: Interval | undefined): iv is Interval => !!iv && typeof iv === 'object';

/** "95% CI 72.3–87.6%", or "no interval recorded" (runs of early versions). */
export function ciText(iv: Interval | undefined): string {
  return hasInterval(iv) ? `95% CI ${fixed(num(iv.low) * 100, 1)}–${fixed(num(iv.high) * 100, 1)}%` : 'no interval recorded';
}

/** "95% CI 72.3–87.6%, n=100", or "n=100" when there is no interval (runs of early versions). */
export function intervalText(iv: Interval | undefined, n?: number): string {
  if (!hasInterval(iv)) return n === undefined ? 'no interval recorded' : `n=${count(n)}`;
  return `${ciText(iv)}, n=${count(iv.n)}`;
}

/** "81.0% (95% CI 72.3–87.6%, n=100)". */
export function accuracyText(accuracy: unknown, iv: Interval | undefined, n?: number): string {
  return `${pct(accuracy)} (${intervalText(iv, n)})`;
}

/** What the examples of a run or dataset are called. */
const nounOf = (m: 'text' | undefined): string => (m === 'text' ? 'texts' : 'images');

/** The baseline as the panel names it: TF-IDF for texts, raw pixels for images. */
export const baselineName = (m: 'text' | undefined): { label: string; short: string } =>
  m === 'text' ? { label: 'TF-IDF words, logistic regression', short: 'TF-IDF words' } : { label: 'logistic regression on raw pixels', short: 'raw pixels' };

/** At most `n` characters of a one-line text (the engine sends 120–200), with an ellipsis when cut. */
export function clip(text: unknown, n = 160): string {
  const one = typeof text === 'string' ? text.replace(/\s+/g, ' ').trim() : '';
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

/** "coverage 93.1% of the words (2 texts with none)". */
function coverageText(c: { tokens: number; emptyTexts: number } | undefined): string {
  if (!c || typeof c !== 'object') return 'coverage not recorded';
  const empty = num(c.emptyTexts) > 0 ? ` (${count(c.emptyTexts)} text${c.emptyTexts === 1 ? '' : 's'} with none)` : '';
  return `${pct(c.tokens)} of the words known${empty}`;
}

/** The test accuracy line, the small-test-split warning and the baseline. */
export function headline(r: ResultView): SafeHtml {
  const b = r.baseline;
  const cv = b.cvAccuracy !== undefined ? html`; cross-validated ${pct(b.cvAccuracy)}${r.selection ? html` against the chosen head's ${pct(r.selection.rows.find((x) => x.chosen)?.meanAccuracy)}` : ''}` : '';
  return html`
    <p class="big" id="test-accuracy">${pct(r.accuracy)} <span class="muted">test accuracy on ${count(r.count)} ${nounOf(r.modality)} (${ciText(r.interval)}) · macro F1 ${fixed(r.macroF1, 3)} · features by ${r.engine}, head trained by ${r.headTrainer} · ${fixed(r.seconds, 1)} s</span></p>
    ${r.warning ? html`<p class="warnings" id="test-warning">⚠ ${r.warning}</p>` : ''}
    <p id="baseline">Baseline (${baselineName(r.modality).label}): test ${accuracyText(b.accuracy, b.interval, r.count)}${cv} — ${b.verdict}.</p>
    ${r.modality === 'text' ? html`<p class="muted" id="text-coverage">Vocabulary of the run's texts: ${coverageText(r.text?.coverage)} · tokenizer: ${r.text?.tokenizer ?? 'not recorded'}</p>` : ''}`;
}

/** The cross-validated head choice: one row per configuration (mean ± std across folds), the baseline on the same folds, and why. */
export function selectionTable(s: SelectionView | undefined, modality?: 'text'): SafeHtml {
  if (!s) return trusted('<p class="muted" id="selection">No cross-validated head choice in this run (fine-tuned, too few images, or an earlier version).</p>');
  const how = s.method === 'holdout' ? html`one held-out fold of ${count(s.sources)} images` : html`${count(s.folds)}-fold cross-validation on ${count(s.sources)} non-test images`;
  const row = (name: unknown, mean: unknown, std: unknown, cls: string, mark: string) =>
    html`<tr class="${cls}"><th scope="row">${name}${mark}</th><td>${pct(mean)} ± ${fixed(num(std) * 100, 1)}</td></tr>`;
  return html`<table class="metrics" id="selection"><caption>Head chosen by ${how}</caption>
    <tr><th scope="col">configuration</th><th scope="col">accuracy, mean ± std (points)</th></tr>
    ${s.rows.map((r) => row(r.name, r.meanAccuracy, r.stdAccuracy, r.chosen ? 'chosen' : '', r.chosen ? ' ✓' : ''))}
    ${s.baseline ? row(`${baselineName(modality).short} (baseline)`, s.baseline.meanAccuracy, s.baseline.stdAccuracy, s.baselineWins ? 'wins' : 'baseline', '') : ''}
    </table>
    <p class="muted" id="selection-reason">Chose <strong>${s.chosen}</strong>: ${s.reason}. Epochs: ${s.epochs}. Refit on all non-test images for ${count(s.refitEpochs)} epochs.</p>`;
}

/** Said plainly before the export section when raw pixels beat the backbone: what to try instead. */
export function baselineVerdict(r: ResultView): SafeHtml {
  const wins = r.selection ? r.selection.baselineWins : r.baseline.wins;
  if (!wins) return html``;
  if (r.modality === 'text') {
    const advice = r.selection?.advice ?? r.baseline.advice ?? 'Try a sentence encoder (minilm-l6-v2), or more texts per class.';
    return html`<div class="warn-box" id="baseline-wins" role="note"><strong>TF-IDF words beat this backbone here.</strong> Exporting it ships a model no better than a keyword classifier: ${advice}</div>`;
  }
  const advice = r.selection?.advice ?? r.baseline.advice ?? 'Try another backbone, more images per class, or fine-tuning the top layers (Unfreeze top layers).';
  return html`<div class="warn-box" id="baseline-wins" role="note"><strong>Raw pixels beat this backbone here.</strong> Exporting it ships a model no better than a pixel classifier: ${advice}</div>`;
}

/** The most confident test mistakes: thumbnails for images, excerpts (escaped, clipped) for texts; each opens its file. */
export function mistakesSection(r: ResultView): SafeHtml {
  if (!r.mistakes.length) return html`<p class="muted">No test ${r.modality === 'text' ? 'text' : 'image'} was misclassified.</p>`;
  if (r.modality === 'text') {
    return html`<h3>Most confident mistakes</h3><ul class="texts" id="text-mistakes">${r.mistakes.map(
      (m) => html`<li><a href="#" data-action="open" data-arg="${m.path}" title="${m.path}">${m.label} → <strong>${m.predicted}</strong> ${pct(m.probability)}</a> <q>${clip(m.text)}</q></li>`,
    )}</ul>`;
  }
  return html`<h3>Most confident mistakes</h3><div class="classes">${r.mistakes.map(
    (m) => html`<figure class="cls"><img src="${m.thumb}" alt="${m.label} predicted as ${m.predicted}" data-action="open" data-arg="${m.path}" tabindex="0" title="${m.path}"><figcaption>${m.label} → <strong>${m.predicted}</strong> ${pct(m.probability)}</figcaption></figure>`,
  )}</div>`;
}

/** "min 12 · median 48 · mean 51.3 · max 140". */
function lengths(l: LengthStats | undefined): string {
  if (!l || typeof l !== 'object') return 'not recorded';
  return `min ${count(l.min)} · median ${count(l.median)} · mean ${fixed(l.mean, 1)} · max ${count(l.max)}`;
}

/** The summary of a text dataset: counts, lengths, coverage, and a few texts per class (each opens its file). */
export function textDatasetSummary(d: DatasetPreview): SafeHtml {
  const t = d.text;
  const classes = d.classes.map(
    (c) => html`<div class="text-class"><strong>${c.label}</strong> ${count(c.count)} texts<ul class="texts">${(c.texts ?? []).map((x) => html`<li><a href="#" data-action="open" data-arg="${x.path}" title="${x.path}"><q>${clip(x.text)}</q></a></li>`)}</ul></div>`,
  );
  return html`<p>${count(d.total)} texts in ${count(d.classes.length)} classes</p>
    <p class="muted" id="text-lengths">Characters: ${lengths(t?.chars)}. Words: ${lengths(t?.words)}.</p>
    <p class="muted" id="text-coverage-preview">Vocabulary: ${coverageText(t?.coverage)} to ${t?.coverage?.backbone ?? 'the bundled word vectors'}.</p>
    <div class="text-classes">${classes}</div>`;
}

function candidates(e: ExportView): SafeHtml {
  if (e.candidates.length <= 1) return html``;
  const on = e.choice ? html`${count(e.choice.images)} ${e.choice.split} images` : html`the images of the choice`;
  return html`<table class="metrics" id="candidates"><caption>Variants tried (accuracy on ${on})</caption><tr><th>variant</th><th>size</th><th>gzipped</th><th>accuracy (95% CI)</th></tr>${e.candidates.map(
    (c) => html`<tr><th scope="row">${c.name}${c.name === e.chosen ? ' ✓' : ''}</th><td>${mb(c.bytes)}</td><td>${mb(c.gzipBytes)}</td><td>${accuracyText(c.accuracy, c.accuracyInterval)}${c.withinBudget ? '' : ' ✗'}</td></tr>`,
  )}</table>`;
}

function choiceLine(e: ExportView): SafeHtml {
  const c = e.choice;
  if (!c) return html``;
  return c.split === 'test'
    ? html`<p class="muted" id="export-choice">No choice made: the variant asked for, measured on ${count(c.images)} test images.</p>`
    : html`<details class="muted" id="export-choice"><summary>Decided on ${count(c.images)} ${c.split === 'val' ? 'validation' : c.split} images, never the test split</summary>${c.rule}.</details>`;
}

function quantizationLine(e: ExportView): SafeHtml {
  const q = e.quantization;
  if (!q) return html``;
  return html`<p id="export-int8">int8: calibrated on ${count(q.calibrationImages)} ${q.calibrationSplit === 'train' ? 'training' : q.calibrationSplit} images; ${fixed(q.int8Ms, 1)} ms/image against float32's ${fixed(q.float32Ms, 1)} (<strong>${fixed(q.speedup, 2)}×</strong> at batch 1, ${fixed(q.batch32Speedup, 2)}× at batch 32) in ONNX Runtime on ${count(q.threads)} thread${q.threads === 1 ? '' : 's'}.</p>`;
}

/** The slimming steps as a table and as a curve (validation accuracy and ms/image per step). */
export function slimmingSection(e: ExportView): SafeHtml {
  const s = e.slimming;
  if (!s) return html``;
  const steps = s.steps.map((x) => `${fixed(num(x.fraction) * 100, 0)}%`);
  const rows = s.steps.map(
    (x) => html`<tr class="${x.fraction === s.chosen ? 'chosen' : ''}"><th scope="row">${fixed(num(x.fraction) * 100, 0)}%${x.fraction === s.chosen ? ' ✓' : ''}</th><td>${count(x.hiddenKept)} / ${count(x.hiddenTotal)}</td><td>${mb(x.bytes)}</td><td>${fixed(x.msPerImage, 1)}</td><td>${fixed(x.speedup, 2)}×</td><td>${pct(x.valAccuracy)}</td><td>${fixed(x.dropPoints, 1)}${x.withinBudget ? '' : ' ✗'}</td></tr>`,
  );
  const chosen = num(s.chosen) > 0 ? html`chose ${fixed(num(s.chosen) * 100, 0)}% removed` : html`no step met the budget: the backbone is unslimmed`;
  return html`<div id="slimming"><table class="metrics"><caption>Backbone slimming (asked: ${typeof s.asked === 'number' ? fixed(s.asked, 2) : s.asked}; ${chosen}; budget ${fixed(s.budgetPoints, 1)} points on ${count(s.validationImages)} validation images${s.oofTrainImages ? html` + ${count(s.oofTrainImages)} training images out of fold` : html``})</caption>
    <tr><th>removed</th><th>hidden channels</th><th>size</th><th>ms / image</th><th>speed-up</th><th>val accuracy</th><th>drop (points)</th></tr>${rows}</table>
    <div class="charts">${stepChart('Validation accuracy by step', [{ name: 'val accuracy', cls: 's-val', values: s.steps.map((x) => num(x.valAccuracy)) }], steps, 'hidden channels removed', 1, true)}${stepChart(
      `Backbone ms / image (${count(s.threads)} threads)`,
      [{ name: 'ms / image', cls: 's-train', values: s.steps.map((x) => num(x.msPerImage)) }],
      steps,
      'hidden channels removed',
    )}</div></div>`;
}

/** The export's figures: size, accuracy with its interval, where the variant was chosen, int8 speed, slimming. */
export function exportDetails(e: ExportView): SafeHtml {
  return html`<p id="export-result">${e.modelFormat} (<strong>${e.chosen}</strong>) in <code>${e.outDir}</code>: ${mb(e.bytes)} (${mb(e.gzipBytes)} gzipped), ${fixed((num(e.bytes) / num(e.float32Bytes)) * 100, 0)}% of float32; test accuracy ${accuracyText(e.accuracy, e.interval, e.testImages)}; float32 ${accuracyText(e.float32Accuracy, e.float32Interval, e.testImages)}; ${fixed(e.msPerImage, 1)} ms per image.</p>
    ${choiceLine(e)}${quantizationLine(e)}${candidates(e)}${slimmingSection(e)}`;
}
