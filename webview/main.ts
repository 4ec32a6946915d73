/**
 * The training panel (browser side). It draws what the host sends (`state`,
 * `progress`) and sends back what the user does. No TensorFlow.js here.
 */
import {
  provideVSCodeDesignSystem,
  vsCodeBadge,
  vsCodeButton,
  vsCodeDivider,
  vsCodeDropdown,
  vsCodeOption,
  vsCodeProgressRing,
  vsCodeTextField,
} from '@vscode/webview-ui-toolkit';
import { type ExportChoices, type FormOptions, type FromWebview, type PanelState, type ToWebview, validateForm } from '../src/shared/panelProtocol';
import { lineChart } from './charts';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeTextField(), vsCodeDropdown(), vsCodeOption(), vsCodeProgressRing(), vsCodeDivider(), vsCodeBadge());

interface VsCodeApi {
  postMessage(msg: FromWebview): void;
  getState(): PanelState | undefined;
  setState(s: PanelState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;
const vscode = acquireVsCodeApi();
const send = (m: FromWebview) => vscode.postMessage(m);

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const NUMERIC: Array<{ key: keyof FormOptions; label: string; hint: string }> = [
  { key: 'epochs', label: 'Epochs', hint: '1–1000; early stopping ends sooner' },
  { key: 'batchSize', label: 'Batch size', hint: '1–4096' },
  { key: 'learningRate', label: 'Learning rate', hint: 'Adam, e.g. 0.001' },
  { key: 'hiddenUnits', label: 'Hidden units', hint: '0 = logistic regression' },
  { key: 'dropout', label: 'Dropout', hint: '0 to below 1' },
  { key: 'val', label: 'Validation split', hint: 'fraction, 0–0.5' },
  { key: 'test', label: 'Test split', hint: 'fraction, above 0, at most 0.5' },
  { key: 'seed', label: 'Seed', hint: 'same seed, same split and metrics' },
  { key: 'unfreeze', label: 'Unfreeze top layers', hint: '' },
  { key: 'augment', label: 'Augmented views', hint: 'per training image: flip, crop, rotate, light; 0 = off' },
];

let state: PanelState | undefined = vscode.getState();
let formDirty = false;

function skeleton(): void {
  $('app').innerHTML = `
  <header><h1>Headstart</h1><vscode-badge id="phase">idle</vscode-badge><span id="notice" class="notice" role="status"></span></header>
  <div id="error" class="error" role="alert" hidden></div>
  <section aria-labelledby="h-data"><h2 id="h-data">Dataset</h2>
    <div class="row"><vscode-text-field id="f-data" placeholder="a folder with one sub-folder per class, or a .csv / .jsonl manifest" size="60">Images</vscode-text-field>
    <vscode-button id="browse" appearance="secondary">Browse…</vscode-button></div>
    <div id="f-data-err" class="field-error"></div>
    <div id="dataset"></div>
  </section>
  <section aria-labelledby="h-opt"><h2 id="h-opt">Options</h2>
    <div class="row"><label for="f-backbone">Backbone</label><vscode-dropdown id="f-backbone" position="below"></vscode-dropdown></div>
    <div class="grid">${NUMERIC.map((f) => `<div><vscode-text-field id="f-${f.key}" data-key="${f.key}">${f.label}</vscode-text-field><div class="hint" id="f-${f.key}-hint">${esc(f.hint)}</div><div class="field-error" id="f-${f.key}-err"></div></div>`).join('')}</div>
    <div class="row actions"><vscode-button id="start">Start training</vscode-button><vscode-button id="cancel" appearance="secondary" hidden>Cancel</vscode-button></div>
  </section>
  <section id="progress-section" aria-labelledby="h-prog"><h2 id="h-prog">Progress</h2>
    <div id="phase-message" class="muted"></div>
    <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" id="bar"><div id="bar-fill"></div></div>
    <div id="progress-detail" class="muted"></div>
    <div id="charts" class="charts"></div>
  </section>
  <section id="results" aria-labelledby="h-res" hidden><h2 id="h-res">Results</h2><div id="results-body"></div></section>
  <section id="export" aria-labelledby="h-exp" hidden><h2 id="h-exp">Export</h2>
    <div class="row"><vscode-text-field id="e-out" size="40">Folder in the workspace</vscode-text-field>
      <div><label for="e-format">Format</label><br><vscode-dropdown id="e-format">
        <vscode-option value="tfjs">TensorFlow.js</vscode-option>
        <vscode-option value="onnx">ONNX</vscode-option></vscode-dropdown></div>
      <div><label for="e-quant">Weights</label><br><vscode-dropdown id="e-quant">
        <vscode-option value="auto">auto: smallest within the budget</vscode-option>
        <vscode-option value="uint8">uint8 (¼ size)</vscode-option>
        <vscode-option value="uint16">uint16 (½ size)</vscode-option>
        <vscode-option value="float16">float16 (½ size)</vscode-option>
        <vscode-option value="none">float32 (no compression)</vscode-option></vscode-dropdown></div>
      <vscode-text-field id="e-prune" size="6" value="0">Head sparsity</vscode-text-field>
      <vscode-text-field id="e-drop" size="6" value="1">Max drop (points)</vscode-text-field>
      <vscode-button id="e-go">Export</vscode-button></div>
    <div class="field-error" id="e-err"></div>
    <div id="export-body"></div>
  </section>
  <section aria-labelledby="h-runs"><h2 id="h-runs">Past runs</h2><div id="runs"></div></section>`;

  $('browse').addEventListener('click', () => send({ type: 'pickData' }));
  $('start').addEventListener('click', () => {
    const o = readForm();
    if (showErrors(o)) send({ type: 'start', options: o });
  });
  $('cancel').addEventListener('click', () => send({ type: 'cancel' }));
  $('e-go').addEventListener('click', () => {
    const val = (id: string) => ($(id) as HTMLInputElement).value.trim();
    const out = val('e-out');
    const format = (val('e-format') || 'tfjs') as ExportChoices['format'];
    const quantize = (val('e-quant') || 'auto') as ExportChoices['quantize'];
    const prune = Number(val('e-prune') || '0');
    const maxDrop = Number(val('e-drop') || '1');
    const err = !out
      ? 'choose a folder'
      : !(prune >= 0 && prune < 1)
        ? 'head sparsity is a fraction from 0 to below 1'
        : !(maxDrop >= 0 && maxDrop <= 100)
          ? 'max drop is 0–100 points'
          : format === 'onnx' && quantize === 'uint16'
            ? 'ONNX exports store weights as float32, float16 or uint8'
            : format === 'onnx' && prune > 0
              ? 'head sparsity applies to TensorFlow.js exports'
              : '';
    $('e-err').textContent = err;
    if (!err) send({ type: 'export', out, choices: { format, quantize, prune, maxDrop } });
  });
  $('e-quant').addEventListener('change', () => $('e-drop').toggleAttribute('disabled', ($('e-quant') as HTMLInputElement).value !== 'auto'));
  const onEdit = () => {
    formDirty = true;
    const o = readForm();
    showErrors(o);
    send({ type: 'options', options: o });
  };
  for (const id of ['f-data', ...NUMERIC.map((f) => `f-${f.key}`)]) $(id).addEventListener('change', onEdit);
  for (const id of NUMERIC.map((f) => `f-${f.key}`)) $(id).addEventListener('input', () => showErrors(readForm()));
  $('f-backbone').addEventListener('change', onEdit);
  // One delegated listener for generated content (no inline handlers under the CSP).
  document.body.addEventListener('click', (ev) => {
    const el = (ev.target as HTMLElement).closest<HTMLElement>('[data-action]');
    if (!el) return;
    const { action, arg } = el.dataset;
    if (action === 'open' && arg) send({ type: 'openFile', path: arg });
    if (action === 'run' && arg) send({ type: 'openRun', runDir: arg });
    if (action === 'snippet') send({ type: 'openSnippet' });
    if (action === 'distill') send({ type: 'distill', student: ($('d-student') as HTMLInputElement).value });
  });
  document.body.addEventListener('keydown', (ev) => {
    const el = (ev.target as HTMLElement).closest<HTMLElement>('[data-action]');
    if (el && (ev.key === 'Enter' || ev.key === ' ')) {
      ev.preventDefault();
      el.click();
    }
  });
}

function readForm(): FormOptions {
  const v = (id: string) => ($(id) as HTMLInputElement).value;
  const o = { ...(state?.options ?? ({} as FormOptions)) };
  o.data = v('f-data').trim();
  o.backbone = v('f-backbone') || o.backbone;
  for (const f of NUMERIC) (o as unknown as Record<string, number>)[f.key] = v(`f-${f.key}`).trim() === '' ? NaN : Number(v(`f-${f.key}`));
  return o;
}

/** Marks invalid fields; returns true when the form is valid. */
function showErrors(o: FormOptions): boolean {
  const errs = validateForm(o);
  for (const key of ['data', ...NUMERIC.map((f) => f.key)] as Array<keyof FormOptions>) {
    const el = document.getElementById(`f-${key}-err`);
    if (el) el.textContent = errs[key] ?? '';
    document.getElementById(`f-${key}`)?.toggleAttribute('aria-invalid', !!errs[key]);
  }
  const ok = Object.keys(errs).length === 0;
  $('start').toggleAttribute('disabled', !ok || !!state?.running || state?.trusted === false);
  return ok;
}

function fillForm(s: PanelState): void {
  const active = document.activeElement?.id;
  const set = (id: string, value: string) => {
    const el = $(id) as HTMLInputElement;
    if (active !== id && el.value !== value) el.value = value;
  };
  set('f-data', s.options.data);
  for (const f of NUMERIC) set(`f-${f.key}`, String(s.options[f.key]));
  const dd = $('f-backbone');
  const ids = s.backbones.map((b) => b.id).join(',');
  if (dd.dataset.ids !== ids) {
    dd.dataset.ids = ids;
    dd.innerHTML = (s.backbones.length ? s.backbones : [{ id: s.options.backbone, title: '', bundled: true, cached: true, approxBytes: 0, format: '', featureSize: 0 }])
      .map((b) => `<vscode-option value="${esc(b.id)}">${esc(b.id)}${b.title ? ` — ${esc(b.title)}` : ''}${b.bundled ? '' : b.cached ? ' (downloaded)' : ' (downloads on first use)'}</vscode-option>`)
      .join('');
  }
  (dd as HTMLInputElement).value = s.options.backbone;
  const unfreeze = $('f-unfreeze');
  unfreeze.toggleAttribute('disabled', !s.unfreezeSupported || s.running);
  $('f-unfreeze-hint').textContent = s.unfreezeSupported ? 'weighted layers at the top of the backbone, fine-tuned after the head (0 = frozen)' : 'this backbone is a frozen graph: choose a layers backbone to unfreeze';
  for (const f of NUMERIC) if (f.key !== 'unfreeze') $(`f-${f.key}`).toggleAttribute('disabled', s.running);
  if (!($('e-out') as HTMLInputElement).value && s.exportDefault) ($('e-out') as HTMLInputElement).value = s.exportDefault;
}

function renderDataset(s: PanelState): void {
  const d = s.dataset;
  if (!d) {
    $('dataset').innerHTML = s.options.data ? '<p class="muted">Reading the dataset…</p>' : '<p class="muted">Choose a dataset: Browse…, or right-click a folder in the Explorer → Fine-tune on This Folder.</p>';
    return;
  }
  const classes = d.classes
    .map((c) => `<figure class="cls">${c.thumb ? `<img src="${esc(c.thumb)}" alt="" data-action="open" data-arg="${esc(c.example ?? '')}" tabindex="0">` : '<div class="noimg"></div>'}<figcaption><strong>${esc(c.label)}</strong> ${c.count}</figcaption></figure>`)
    .join('');
  const skipped = d.skipped.length
    ? `<details><summary>${d.skipped.length} file${d.skipped.length > 1 ? 's' : ''} skipped</summary><ul>${d.skipped.slice(0, 200).map((k) => `<li><code>${esc(k.path)}</code>: ${esc(k.reason)}</li>`).join('')}</ul></details>`
    : '';
  const warnings = d.warnings.map((w) => `<li>${esc(w)}</li>`).join('');
  $('dataset').innerHTML = `<p>${d.total} images in ${d.classes.length} classes</p><div class="classes">${classes}</div>${warnings ? `<ul class="warnings">${warnings}</ul>` : ''}${skipped}`;
}

function renderProgress(s: PanelState): void {
  $('phase').textContent = s.running ? s.phase : s.exporting ? 'export' : 'idle';
  $('phase-message').textContent = s.running || s.exporting ? s.phaseMessage : s.history.length ? `${s.history.length} epochs` : 'Not started';
  $('cancel').hidden = !s.running;
  if (!s.running) {
    ($('bar-fill') as HTMLElement).style.width = s.history.length ? '100%' : '0';
    $('progress-detail').textContent = '';
  }
  const h = s.history;
  $('charts').innerHTML = h.length
    ? lineChart('Loss', [{ name: 'train', cls: 's-train', values: h.map((e) => e.loss) }, { name: 'validation', cls: 's-val', values: h.map((e) => e.valLoss) }], s.totalEpochs) +
      lineChart('Accuracy', [{ name: 'train', cls: 's-train', values: h.map((e) => e.accuracy) }, { name: 'validation', cls: 's-val', values: h.map((e) => e.valAccuracy) }], s.totalEpochs, 1, true)
    : '';
}

function renderResults(s: PanelState): void {
  const r = s.result;
  $('results').hidden = !r;
  $('export').hidden = !r;
  if (!r) return;
  const max = Math.max(1, ...r.confusion.flat());
  const head = `<tr><th scope="col">true \\ predicted</th>${r.labels.map((l) => `<th scope="col">${esc(l)}</th>`).join('')}</tr>`;
  const rows = r.confusion.map((row, i) => `<tr><th scope="row">${esc(r.labels[i])}</th>${row.map((v, j) => `<td class="heat ${i === j ? 'diag' : ''}" style="--a:${(v / max).toFixed(3)}">${v}</td>`).join('')}</tr>`).join('');
  const perClass = r.perClass.map((c) => `<tr><th scope="row">${esc(c.label)}</th><td>${c.precision.toFixed(3)}</td><td>${c.recall.toFixed(3)}</td><td>${c.f1.toFixed(3)}</td><td>${c.support}</td></tr>`).join('');
  const mistakes = r.mistakes.length
    ? `<h3>Most confident mistakes</h3><div class="classes">${r.mistakes.map((m) => `<figure class="cls"><img src="${esc(m.thumb)}" alt="${esc(m.label)} predicted as ${esc(m.predicted)}" data-action="open" data-arg="${esc(m.path)}" tabindex="0" title="${esc(m.path)}"><figcaption>${esc(m.label)} → <strong>${esc(m.predicted)}</strong> ${pct(m.probability)}</figcaption></figure>`).join('')}</div>`
    : '<p class="muted">No test image was misclassified.</p>';
  $('results-body').innerHTML = `
    <p class="big" id="test-accuracy">${pct(r.accuracy)} <span class="muted">test accuracy on ${r.count} images · macro F1 ${r.macroF1.toFixed(3)} · features by ${esc(r.engine)}, head on ${esc(r.backend)} · ${r.seconds.toFixed(1)} s</span></p>
    <p>Baseline (raw pixels): ${pct(r.baseline.accuracy)}: ${esc(r.baseline.verdict)}.</p>
    <div class="tables"><table class="metrics"><caption>Per class</caption><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>${perClass}</table>
    <table class="confusion"><caption>Confusion matrix</caption>${head}${rows}</table></div>
    ${mistakes}
    <p class="muted">Run folder: <a href="#" data-action="open" data-arg="${esc(`${r.runDir}/run.json`)}">${esc(r.runDir)}</a></p>
    <h3>Distill into a smaller backbone</h3>
    <div class="row"><vscode-dropdown id="d-student">${s.backbones.filter((b) => b.id !== s.options.backbone && (b.bundled || b.cached)).map((b) => `<vscode-option value="${esc(b.id)}">${esc(b.id)} (${(b.approxBytes / 1e6).toFixed(1)} MB)</vscode-option>`).join('')}</vscode-dropdown>
    <vscode-button data-action="distill" appearance="secondary" ${s.running ? 'disabled' : ''}>Distill</vscode-button></div>
    ${s.distilled ? `<table class="metrics" id="distilled"><caption>Teacher and student (full float32 models)</caption><tr><th></th><th>backbone</th><th>size</th><th>test accuracy</th><th>ms / image</th></tr>${(['teacher', 'student'] as const).map((k) => `<tr><th scope="row">${k}</th><td>${esc(s.distilled![k].backbone)}</td><td>${mb(s.distilled![k].bytes)}</td><td>${pct(s.distilled![k].accuracy)}</td><td>${s.distilled![k].msPerImage.toFixed(1)}</td></tr>`).join('')}</table>` : ''}`;
  const e = s.exported;
  $('e-go').toggleAttribute('disabled', s.exporting || s.running);
  $('export-body').innerHTML = s.exporting
    ? '<p><vscode-progress-ring></vscode-progress-ring> Exporting and measuring the model…</p>'
    : e
      ? `<p id="export-result">${esc(e.modelFormat)} (<strong>${esc(e.chosen)}</strong>) in <code>${esc(e.outDir)}</code>: ${mb(e.bytes)} (${mb(e.gzipBytes)} gzipped), ${((e.bytes / e.float32Bytes) * 100).toFixed(0)}% of float32; test accuracy ${pct(e.accuracy)} (float32 ${pct(e.float32Accuracy)}); ${e.msPerImage.toFixed(1)} ms per image.</p>
        ${e.candidates.length > 1 ? `<table class="metrics"><caption>Variants tried</caption><tr><th>variant</th><th>size</th><th>gzipped</th><th>accuracy</th></tr>${e.candidates.map((c) => `<tr><th scope="row">${esc(c.name)}${c.name === e.chosen ? ' ✓' : ''}</th><td>${mb(c.bytes)}</td><td>${mb(c.gzipBytes)}</td><td>${pct(c.accuracy)}${c.withinBudget ? '' : ' ✗'}</td></tr>`).join('')}</table>` : ''}
        <vscode-button data-action="snippet" appearance="secondary">Open inference snippet</vscode-button>`
      : '';
}

function renderRuns(s: PanelState): void {
  $('runs').innerHTML = s.runs.length
    ? `<ul class="runs">${s.runs.slice(0, 30).map((r) => `<li><a href="#" data-action="run" data-arg="${esc(r.runDir)}">${esc(r.name)}</a> <span class="muted">${pct(r.accuracy)} · ${r.classes} classes · ${esc(r.backbone)}</span></li>`).join('')}</ul>`
    : '<p class="muted">No runs in this workspace yet.</p>';
}

function render(s: PanelState): void {
  state = s;
  vscode.setState(s);
  fillForm(s);
  if (!formDirty) showErrors(s.options);
  else showErrors(readForm());
  const err = $('error');
  err.hidden = !s.error;
  err.textContent = s.error ?? '';
  if (!s.trusted) {
    err.hidden = false;
    err.textContent = 'This workspace is not trusted: Headstart can show past runs but will not train or export here.';
  }
  $('notice').textContent = s.notice ?? '';
  renderDataset(s);
  renderProgress(s);
  renderResults(s);
  renderRuns(s);
}

window.addEventListener('message', (ev: MessageEvent<ToWebview>) => {
  const m = ev.data;
  switch (m.type) {
    case 'state':
      formDirty = false;
      render(m.state);
      return;
    case 'progress': {
      const f = m.total ? Math.min(100, (m.done / m.total) * 100) : 0;
      ($('bar-fill') as HTMLElement).style.width = `${f}%`;
      $('bar').setAttribute('aria-valuenow', f.toFixed(0));
      const eta = m.eta !== undefined && Number.isFinite(m.eta) ? ` · about ${Math.ceil(m.eta)} s left` : '';
      $('progress-detail').textContent = `${m.phase}: ${m.done}/${m.total}${m.detail ? ` · ${m.detail}` : ''}${eta}`;
      return;
    }
    default: {
      const never: never = m;
      void never;
    }
  }
});

skeleton();
if (state) render(state);
send({ type: 'ready' });
