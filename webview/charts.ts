/** Small SVG line charts for the training curves and the slimming steps (no library: strict CSP, no eval). */
import { type SafeHtml, html } from '../src/shared/html';

export interface Series {
  name: string;
  /** CSS class that colours the line (see media/panel.css). */
  cls: string;
  values: number[];
}

interface Axis {
  /** Points on the x axis (at least 2 are drawn). */
  n: number;
  /** Caption under the axis. */
  caption: string;
  /** Labels of the points, when each has one (slimming steps). */
  ticks?: string[];
}

/** An SVG chart of series over the points of `axis`; `yMax` fixes the top (e.g. 1 for accuracy). */
function chart(title: string, series: Series[], axis: Axis, yMax?: number, format: (v: number) => string = (v) => v.toFixed(2)): SafeHtml {
  const w = 360;
  const h = 170;
  const pad = { l: 42, r: 10, t: 22, b: axis.ticks ? 36 : 26 };
  // Values come from run.json / report.json: anything but a finite number is left out of the scale.
  const n = Math.max(axis.n, ...series.map((s) => s.values.length), 2);
  const all = series.flatMap((s) => s.values).filter(Number.isFinite);
  const top = yMax ?? Math.max(1e-6, ...all) * 1.05;
  const x = (i: number) => pad.l + (i / (n - 1)) * (w - pad.l - pad.r);
  const y = (v: number) => pad.t + (1 - Math.min(v, top) / top) * (h - pad.t - pad.b);
  const grid = [0, 0.25, 0.5, 0.75, 1].map(
    (f) => html`<line class="grid" x1="${pad.l}" x2="${w - pad.r}" y1="${y(top * f)}" y2="${y(top * f)}"/><text class="tick" x="${pad.l - 4}" y="${y(top * f) + 3}" text-anchor="end">${format(top * f)}</text>`,
  );
  const lines = series.map((s) => {
    const pts = s.values.map((v, i) => [i, Number(v)] as const).filter(([, v]) => Number.isFinite(v));
    if (!pts.length) return '';
    const [li, lv] = pts[pts.length - 1]!;
    const dots = axis.ticks ? pts.map(([i, v]) => html`<circle class="dot ${s.cls}" cx="${x(i)}" cy="${y(v)}" r="2.5"/>`) : html`<circle class="dot ${s.cls}" cx="${x(li)}" cy="${y(lv)}" r="2.5"/>`;
    return html`<polyline class="line ${s.cls}" points="${pts.map(([i, v]) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>${dots}`;
  });
  const ticks = (axis.ticks ?? []).map((t, i) => html`<text class="tick" x="${x(i)}" y="${h - pad.b + 12}" text-anchor="middle">${t}</text>`);
  const legend = series.map((s, i) => html`<g transform="translate(${pad.l + 8 + i * 110},12)"><line class="line ${s.cls}" x1="0" x2="14" y1="-3" y2="-3"/><text class="legend" x="18" y="0">${s.name}</text></g>`);
  return html`<figure class="chart"><figcaption>${title}</figcaption><svg viewBox="0 0 ${w} ${h}" role="img" aria-label="${title}">${grid}${lines}${ticks}${legend}<text class="tick" x="${(w + pad.l) / 2}" y="${h - 6}" text-anchor="middle">${axis.caption}</text></svg></figure>`;
}

/** An SVG chart of series over epochs 1..n; `yMax` fixes the top (e.g. 1 for accuracy). */
export function lineChart(title: string, series: Series[], totalEpochs: number, yMax?: number, percent = false): SafeHtml {
  const n = Math.max(Number.isFinite(totalEpochs) ? totalEpochs : 0, ...series.map((s) => s.values.length), 2);
  return chart(title, series, { n, caption: `epoch (${n})` }, yMax, percent ? (v) => `${Math.round(v * 100)}%` : undefined);
}

/** An SVG chart of one series per step, each step labelled (e.g. the fraction of channels removed). */
export function stepChart(title: string, series: Series[], steps: string[], caption: string, yMax?: number, percent = false): SafeHtml {
  return chart(title, series, { n: steps.length, caption, ticks: steps }, yMax, percent ? (v) => `${Math.round(v * 100)}%` : (v) => v.toFixed(1));
}
