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
import { type SafeHtml, count, fixed, html, trusted } from '../src/shared/html';
import { MessageHandler, type RequestMessage } from '../src/shared/messageHandler';
import { type ExportChoices, type FormOptions, type FromWebview, type PanelRequests, type PanelState, type ToWebview, validateForm } from '../src/shared/panelProtocol';
import { lineChart } from './charts';
import { AUTO_FIELDS, NUMERIC_FIELDS, ONNX_EDITABLE, type NumericField, type OnnxEditable, exportChoicesError, exportHint, fieldText, readFormValues, readOnnxEdits, readSlim } from './form';
import { onnxMarkup } from './onnxForm';
import { baselineVerdict, exportDetails, headline, mb, mistakesSection, pct, selectionTable, textDatasetSummary } from './results';

provideVSCodeDesignSystem().register(vsCodeButton(), vsCodeTextField(), vsCodeDropdown(), vsCodeOption(), vsCodeProgressRing(), vsCodeDivider(), vsCodeBadge());

interface VsCodeApi {
  postMessage(msg: FromWebview): void;
  getState(): PanelState | undefined;
  setState(s: PanelState): void;
}
declare function acquireVsCodeApi(): VsCodeApi;
const vscode = acquireVsCodeApi();
type Notification = Exclude<FromWebview, RequestMessage<PanelRequests>>;
const channel = new MessageHandler<PanelRequests, Notification, ToWebview>((m) => vscode.postMessage(m), (m) => onMessage(m));
const send = (m: Notification) => channel.notify(m);

// Every value shown comes from the host's messages (run.json, file names): numbers are
// formatted by fixed()/count(), which never pass a non-number through, and markup is
// built only with html``, which escapes every value.
const num = (x: unknown): number => (typeof x === 'number' ? x : Number.NaN);
const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
/** The one way markup enters the page. */
const setHtml = (el: HTMLElement, h: SafeHtml) => {
  el.innerHTML = h.value;
};

const NUMERIC: Array<{ key: NumericField; label: string; hint: string }> = [
  { key: 'epochs', label: 'Epochs', hint: 'empty: early stopping decides; a number fixes them' },
  { key: 'batchSize', label: 'Batch size', hint: '1–4096' },
  { key: 'learningRate', label: 'Learning rate', hint: 'Adam, e.g. 0.001' },
  { key: 'hiddenUnits', label: 'Hidden units', hint: 'empty: cross-validation decides; 0 = linear' },
  { key: 'dropout', label: 'Dropout', hint: '0 to below 1' },
  { key: 'val', label: 'Validation split', hint: 'fraction, 0–0.5' },
  { key: 'test', label: 'Test split', hint: 'fraction, above 0, at most 0.5' },
  { key: 'seed', label: 'Seed', hint: 'same seed, same split and metrics' },
  { key: 'unfreeze', label: 'Unfreeze top layers', hint: '' },
  { key: 'augment', label: 'Augmented views', hint: 'per training image: flip, crop, rotate, light; 0 = off' },
];

let state: PanelState | undefined = vscode.getState();
let formDirty = false;
/** An ONNX preprocessing field holds a value out of range (not sent; Start waits for a fix). */
let onnxInvalid = false;


function skeleton(): void {
  setHtml($('app'), html`
  <header><h1>Headstart</h1><vscode-badge id="phase">idle</vscode-badge><span id="notice" class="notice" role="status"></span></header>
  <div id="error" class="error" role="alert" hidden></div>
  <section aria-labelledby="h-data"><h2 id="h-data">Dataset</h2>
    <div class="row"><vscode-text-field id="f-data" placeholder="a folder with one sub-folder per class, or a .csv / .jsonl manifest" size="60">Data</vscode-text-field>
    <vscode-button id="browse" appearance="secondary">Browse…</vscode-button></div>
    <div id="f-data-err" class="field-error"></div>
    <div id="dataset"></div>
  </section>
  <section aria-labelledby="h-opt"><h2 id="h-opt">Options</h2>
    <div class="row"><label for="f-backbone">Backbone</label><vscode-dropdown id="f-backbone" position="below"></vscode-dropdown>
      <label for="f-head">Head</label><vscode-dropdown id="f-head" position="below">
        <vscode-option value="auto">auto: linear vs one hidden layer, cross-validated</vscode-option>
        <vscode-option value="linear">linear (softmax regression)</vscode-option>
        <vscode-option value="mlp">one hidden layer</vscode-option></vscode-dropdown></div>
    <div class="field-error" id="f-head-err"></div>
    <div id="onnx-pre" class="onnx-pre" hidden></div>
    <div class="grid">${NUMERIC.map((f) => html`<div><vscode-text-field id="f-${f.key}" data-key="${f.key}" placeholder="${AUTO_FIELDS.has(f.key) ? 'auto' : ''}">${f.label}</vscode-text-field><div class="hint" id="f-${f.key}-hint">${f.hint}</div><div class="field-error" id="f-${f.key}-err"></div></div>`)}</div>
    <div class="row actions"><vscode-button id="start">Start training</vscode-button><vscode-button id="cancel" appearance="secondary" hidden>Cancel</vscode-button></div>
  </section>
  <section id="progress-section" aria-labelledby="h-prog"><h2 id="h-prog">Progress</h2>
    <div id="phase-message" class="muted"></div>
    <div class="bar" role="progressbar" aria-valuemin="0" aria-valuemax="100" id="bar"><div id="bar-fill"></div></div>
    <div id="progress-detail" class="muted"></div>
    <div id="charts" class="charts"></div>
  </section>
  <section id="results" aria-labelledby="h-res" hidden><h2 id="h-res">Results</h2><div id="results-body"></div></section>
  <div id="verdict"></div>
  <section id="export" aria-labelledby="h-exp" hidden><h2 id="h-exp">Export</h2>
    <div class="row"><vscode-text-field id="e-out" size="40">Folder in the workspace</vscode-text-field>
      <div><label for="e-format">Format</label><br><vscode-dropdown id="e-format">
        <vscode-option value="tfjs">TensorFlow.js</vscode-option>
        <vscode-option value="onnx">ONNX</vscode-option></vscode-dropdown></div>
      <div><label for="e-quant">Weights</label><br><vscode-dropdown id="e-quant">
        <vscode-option value="auto">auto: smallest within the budget</vscode-option>
        <vscode-option value="int8">int8 (ONNX: ¼ size, faster)</vscode-option>
        <vscode-option value="uint8">uint8 (¼ size)</vscode-option>
        <vscode-option value="uint16">uint16 (½ size)</vscode-option>
        <vscode-option value="float16">float16 (½ size)</vscode-option>
        <vscode-option value="none">float32 (no compression)</vscode-option></vscode-dropdown></div>
      <div><label for="e-slim">Slim the backbone</label><br><vscode-dropdown id="e-slim">
        <vscode-option value="off">off</vscode-option>
        <vscode-option value="auto">auto (as far as the budget allows)</vscode-option>
        <vscode-option value="fraction">a fraction I choose</vscode-option></vscode-dropdown></div>
      <vscode-text-field id="e-slim-frac" size="6" value="0.25" disabled>Fraction removed</vscode-text-field>
      <vscode-text-field id="e-prune" size="6" value="0">Sparsity (head + backbone kernels)</vscode-text-field>
      <vscode-text-field id="e-drop" size="6" value="1">Max drop (points)</vscode-text-field>
      <vscode-button id="e-go">Export</vscode-button></div>
    <div class="hint" id="e-hint"></div>
    <div class="field-error" id="e-err"></div>
    <div id="export-body"></div>
  </section>
  <section aria-labelledby="h-runs"><h2 id="h-runs">Past runs</h2><div id="runs"></div></section>`);

  $('browse').addEventListener('click', () => send({ type: 'pickData' }));
  $('start').addEventListener('click', () => {
    const o = readForm();
    if (showErrors(o)) send({ type: 'start', options: o });
  });
  $('cancel').addEventListener('click', () => send({ type: 'cancel' }));
  $('e-go').addEventListener('click', () => {
    const { out, choices } = readExport();
    const err = exportChoicesError(out, choices);
    $('e-err').textContent = err;
    if (!err) send({ type: 'export', out, choices });
  });
  // The form says at once why a choice does not fit the format (int8 and slimming need ONNX).
  const onExportEdit = () => {
    const { out, choices } = readExport();
    $('e-drop').toggleAttribute('disabled', choices.quantize !== 'auto' && choices.slim !== 'auto');
    $('e-slim-frac').toggleAttribute('disabled', ($('e-slim') as HTMLInputElement).value !== 'fraction');
    $('e-hint').textContent = exportHint(choices.format);
    $('e-err').textContent = out ? exportChoicesError(out, choices) : '';
  };
  for (const id of ['e-format', 'e-quant', 'e-slim', 'e-slim-frac', 'e-prune', 'e-drop']) $(id).addEventListener('change', onExportEdit);
  onExportEdit();
  const onEdit = () => {
    formDirty = true;
    const o = readForm();
    showErrors(o);
    send({ type: 'options', options: o });
  };
  for (const id of ['f-data', ...NUMERIC.map((f) => `f-${f.key}`)]) $(id).addEventListener('change', onEdit);
  for (const id of NUMERIC.map((f) => `f-${f.key}`)) $(id).addEventListener('input', () => showErrors(readForm()));
  $('f-backbone').addEventListener('change', onEdit);
  // The preprocessing fields are drawn anew for each answer of the worker: one listener on their box.
  $('onnx-pre').addEventListener('change', (ev) => {
    if ((ev.target as HTMLElement).closest('[data-onnx]')) onOnnxEdit();
  });
  $('f-head').addEventListener('change', onEdit);
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

function renderOnnx(s: PanelState): void {
  const box = $('onnx-pre');
  const v = s.onnxPreprocessing;
  box.hidden = !v;
  // Drawn again only when the view changes, so a field being typed in keeps its text.
  const key = v ? JSON.stringify([v, s.running]) : '';
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  onnxInvalid = false;
  setHtml(box, v ? onnxMarkup(v, s.running) : html``);
}

/** The preprocessing fields' edits: checked here (ranges of the options table); sent only when all are valid. */
function onOnnxEdit(): void {
  const v = state?.onnxPreprocessing;
  if (!v) return;
  const texts = Object.fromEntries(ONNX_EDITABLE.map((k) => [k, ($(`o-${k}`) as HTMLInputElement).value])) as Record<OnnxEditable, string>;
  const { edits, errors } = readOnnxEdits(v, texts);
  for (const k of ONNX_EDITABLE) {
    $(`o-${k}-err`).textContent = errors[k] ?? '';
    $(`o-${k}`).toggleAttribute('aria-invalid', !!errors[k]);
  }
  onnxInvalid = Object.keys(errors).length > 0;
  const o: FormOptions = { ...readForm(), onnxInput: Object.keys(edits).length ? edits : undefined };
  showErrors(o);
  if (onnxInvalid) return;
  formDirty = true;
  send({ type: 'options', options: o });
}

function readForm(): FormOptions {
  const v = (id: string) => ($(id) as HTMLInputElement).value;
  const numbers = Object.fromEntries(NUMERIC_FIELDS.map((k) => [k, v(`f-${k}`)])) as Record<NumericField, string>;
  return readFormValues(state?.options ?? ({} as FormOptions), { data: v('f-data'), backbone: v('f-backbone'), head: v('f-head'), numbers });
}

function readExport(): { out: string; choices: ExportChoices } {
  const val = (id: string) => ($(id) as HTMLInputElement).value.trim();
  return {
    out: val('e-out'),
    choices: {
      format: (val('e-format') || 'tfjs') as ExportChoices['format'],
      quantize: (val('e-quant') || 'auto') as ExportChoices['quantize'],
      prune: Number(val('e-prune') || '0'),
      maxDrop: Number(val('e-drop') || '1'),
      slim: readSlim(val('e-slim'), val('e-slim-frac')),
    },
  };
}

/** Marks invalid fields; returns true when the form is valid. */
function showErrors(o: FormOptions): boolean {
  const errs = validateForm(o);
  for (const key of ['data', 'head', 'onnxInput', ...NUMERIC.map((f) => f.key)] as Array<keyof FormOptions>) {
    const el = document.getElementById(`f-${key}-err`);
    if (el) el.textContent = errs[key] ?? '';
    document.getElementById(`f-${key}`)?.toggleAttribute('aria-invalid', !!errs[key]);
  }
  const ok = Object.keys(errs).length === 0;
  // A refused ONNX model cannot train: Start waits for another model or a fix of its preprocessing.
  $('start').toggleAttribute('disabled', !ok || onnxInvalid || !!state?.onnxPreprocessing?.refused || !!state?.running || state?.trusted === false);
  return ok;
}

function fillForm(s: PanelState): void {
  const active = document.activeElement?.id;
  const set = (id: string, value: string) => {
    const el = $(id) as HTMLInputElement;
    if (active !== id && el.value !== value) el.value = value;
  };
  set('f-data', s.options.data);
  for (const f of NUMERIC) set(`f-${f.key}`, fieldText(s.options[f.key]));
  ($('f-head') as HTMLInputElement).value = s.options.head ?? 'auto';
  $('f-head').toggleAttribute('disabled', s.running);
  const dd = $('f-backbone');
  // Backbones of the dataset's modality only (texts: the text catalogue), and always the current one;
  // an ONNX model chosen in the wizard ("Choose an ONNX model…") is no catalogue entry: it is offered as it is.
  const modality = s.dataset?.modality ?? 'image';
  const own = s.backbones.some((b) => b.id === s.options.backbone) ? [] : [{ id: s.options.backbone, title: s.backbones.length ? 'your ONNX model (preprocessing below)' : '', bundled: true, cached: true, approxBytes: 0, format: '', featureSize: 0 }];
  const offered = [...s.backbones.filter((b) => (b.task ?? 'image') === modality || b.id === s.options.backbone), ...own];
  const ids = offered.map((b) => b.id).join(',');
  if (dd.dataset.ids !== ids) {
    dd.dataset.ids = ids;
    setHtml(dd, html`${offered
      .map((b) => html`<vscode-option value="${b.id}">${b.id}${b.title ? ` — ${b.title}` : ''}${b.bundled ? '' : b.cached ? ' (downloaded)' : ' (downloads on first use)'}</vscode-option>`)}`);
  }
  (dd as HTMLInputElement).value = s.options.backbone;
  const unfreeze = $('f-unfreeze');
  unfreeze.toggleAttribute('disabled', !s.unfreezeSupported || s.running);
  $('f-unfreeze-hint').textContent = s.unfreezeSupported ? 'weighted layers at the top of the backbone, fine-tuned after the head (0 = frozen)' : 'this backbone is a frozen graph: choose a layers backbone to unfreeze';
  // Texts have no layers to unfreeze and no image augmentation (the engine refuses both for text data).
  const imageOnly = new Set<NumericField>(['unfreeze', 'augment']);
  for (const f of NUMERIC) if (f.key !== 'unfreeze') $(`f-${f.key}`).toggleAttribute('disabled', s.running || (modality === 'text' && imageOnly.has(f.key)));
  if (!($('e-out') as HTMLInputElement).value && s.exportDefault) ($('e-out') as HTMLInputElement).value = s.exportDefault;
}

function renderDataset(s: PanelState): void {
  const d = s.dataset;
  if (!d) {
    setHtml($('dataset'), s.options.data ? trusted('<p class="muted">Reading the dataset…</p>') : trusted('<p class="muted">Choose a dataset: Browse…, or right-click a folder in the Explorer → Fine-tune on This Folder.</p>'));
    return;
  }
  const classes = d.classes.map(
    (c) => html`<figure class="cls">${c.thumb ? html`<img src="${c.thumb}" alt="" data-action="open" data-arg="${c.example ?? ''}" tabindex="0">` : trusted('<div class="noimg"></div>')}<figcaption><strong>${c.label}</strong> ${count(c.count)}</figcaption></figure>`,
  );
  const skipped = d.skipped.length
    ? html`<details><summary>${count(d.skipped.length)} file${d.skipped.length > 1 ? 's' : ''} skipped</summary><ul>${d.skipped.slice(0, 200).map((k) => html`<li><code>${k.path}</code>: ${k.reason}</li>`)}</ul></details>`
    : '';
  const warnings = d.warnings.map((w) => html`<li>${w}</li>`);
  const body = d.modality === 'text' ? textDatasetSummary(d) : html`<p>${count(d.total)} images in ${count(d.classes.length)} classes</p><div class="classes">${classes}</div>`;
  setHtml($('dataset'), html`${body}${warnings.length ? html`<ul class="warnings">${warnings}</ul>` : ''}${skipped}`);
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
  setHtml(
    $('charts'),
    h.length
      ? html`${lineChart('Loss', [{ name: 'train', cls: 's-train', values: h.map((e) => e.loss) }, { name: 'validation', cls: 's-val', values: h.map((e) => e.valLoss) }], s.totalEpochs)}${lineChart(
          'Accuracy',
          [{ name: 'train', cls: 's-train', values: h.map((e) => e.accuracy) }, { name: 'validation', cls: 's-val', values: h.map((e) => e.valAccuracy) }],
          s.totalEpochs,
          1,
          true,
        )}`
      : html``,
  );
}

function renderResults(s: PanelState): void {
  const r = s.result;
  $('results').hidden = !r;
  $('export').hidden = !r;
  setHtml($('verdict'), r ? baselineVerdict(r) : html``);
  if (!r) return;
  const max = Math.max(1, ...r.confusion.flat().map(num).filter(Number.isFinite));
  const head = html`<tr><th scope="col">true \\ predicted</th>${r.labels.map((l) => html`<th scope="col">${l}</th>`)}</tr>`;
  const rows = r.confusion.map(
    (row, i) => html`<tr><th scope="row">${r.labels[i]}</th>${row.map((v, j) => html`<td class="heat ${i === j ? 'diag' : ''}" style="--a:${fixed(num(v) / max, 3)}">${count(v)}</td>`)}</tr>`,
  );
  const perClass = r.perClass.map((c) => html`<tr><th scope="row">${c.label}</th><td>${fixed(c.precision, 3)}</td><td>${fixed(c.recall, 3)}</td><td>${fixed(c.f1, 3)}</td><td>${count(c.support)}</td></tr>`);
  const mistakes = mistakesSection(r);
  // Distillation is for image backbones (the engine refuses text runs): offer image students for image runs only.
  const students = r.modality === 'text' ? [] : s.backbones.filter((b) => b.id !== s.options.backbone && (b.task ?? 'image') === 'image' && (b.bundled || b.cached));
  const d = s.distilled;
  setHtml(
    $('results-body'),
    html`
    ${headline(r)}
    ${selectionTable(r.selection, r.modality)}
    <div class="tables"><table class="metrics"><caption>Per class</caption><tr><th></th><th>precision</th><th>recall</th><th>F1</th><th>images</th></tr>${perClass}</table>
    <table class="confusion"><caption>Confusion matrix</caption>${head}${rows}</table></div>
    ${mistakes}
    <p class="muted">Run folder: <a href="#" data-action="open" data-arg="${`${r.runDir}/run.json`}">${r.runDir}</a></p>
    ${
      r.modality === 'text'
        ? ''
        : html`<h3>Distill into a smaller backbone</h3>
    <div class="row"><vscode-dropdown id="d-student"><vscode-option value="slim">slim: this backbone slimmed for the task (default; falls back to mobilenet-v2-100)</vscode-option>${students.map((b) => html`<vscode-option value="${b.id}">${b.id} (${fixed(num(b.approxBytes) / 1e6, 1)} MB)</vscode-option>`)}</vscode-dropdown>
    <vscode-button data-action="distill" appearance="secondary" ${s.running ? trusted('disabled') : ''}>Distill</vscode-button></div>`
    }
    ${
      d
        ? html`<table class="metrics" id="distilled"><caption>Teacher and student (full float32 models)</caption><tr><th></th><th>backbone</th><th>size</th><th>test accuracy</th><th>ms / image</th></tr>${([['teacher', d.teacher], ['student', d.student]] as const).map(
            ([k, f]) => html`<tr><th scope="row">${k}</th><td>${f.backbone}</td><td>${mb(f.bytes)}</td><td>${pct(f.accuracy)}</td><td>${fixed(f.msPerImage, 1)}</td></tr>`,
          )}</table>`
        : ''
    }`,
  );
  const e = s.exported;
  $('e-go').toggleAttribute('disabled', s.exporting || s.running);
  setHtml(
    $('export-body'),
    s.exporting
      ? trusted('<p><vscode-progress-ring></vscode-progress-ring> Exporting and measuring the model…</p>')
      : e
        ? html`${exportDetails(e)}
        <vscode-button data-action="snippet" appearance="secondary">Open inference snippet</vscode-button>`
        : html``,
  );
}

function renderRuns(s: PanelState): void {
  setHtml(
    $('runs'),
    s.runs.length
      ? html`<ul class="runs">${s.runs.slice(0, 30).map((r) => html`<li><a href="#" data-action="run" data-arg="${r.runDir}">${r.name}</a> <span class="muted">${pct(r.accuracy)} · ${count(r.classes)} classes · ${r.backbone}</span></li>`)}</ul>`
      : trusted('<p class="muted">No runs in this workspace yet.</p>'),
  );
}

function render(s: PanelState): void {
  state = s;
  vscode.setState(s);
  fillForm(s);
  renderOnnx(s);
  if (!formDirty) showErrors(s.options);
  else showErrors(readForm());
  const err = $('error');
  err.hidden = !s.error;
  err.textContent = s.error ?? '';
  if (!s.trusted) {
    err.hidden = false;
    err.textContent = 'This workspace is not trusted: Headstart lists past runs but will not read images, train, export or open files here. Trust the workspace to continue.';
  }
  $('notice').textContent = s.notice ?? '';
  renderDataset(s);
  renderProgress(s);
  renderResults(s);
  renderRuns(s);
}

function onMessage(m: Exclude<ToWebview, { type: 'reply' }>): void {
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
}

window.addEventListener('message', (ev: MessageEvent<ToWebview>) => channel.handle(ev.data));

skeleton();
if (state) render(state);
void channel.request('ready', {}).then((s) => {
  formDirty = false;
  render(s);
});
