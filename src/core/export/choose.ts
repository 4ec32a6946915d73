/**
 * The candidate / budget loop of --quantize, shared by the image export
 * (export/pipeline.ts, over a format plug-in) and the text export
 * (text/export.ts, over the head of a text model): float32 first, then each
 * candidate judged against float32 on the choice set (never the test split);
 * the first within --max-drop is measured on the test split.
 */
import type { Progress } from '../events';
import { type VariantSource, type VariantSpec, FLOAT32 } from './format';
import { type Candidate, type LabelledSet, type Measurement, type ResolvedExportOptions, judge } from './report';

/** A written variant, its folder and its measurement on the test split. */
export interface Chosen {
  spec: VariantSpec;
  dir: string;
  report: Measurement;
}

/**
 * float32 first (test split, and the choice set under auto), then each
 * candidate judged against float32 on the choice set; the first within
 * budget is measured on the test split. `unit` names the items in warnings.
 */
export async function chooseVariant<S extends LabelledSet>(s: VariantSource<S>, cand: (name: string) => string, test: S, judgeOn: S, opts: ResolvedExportOptions, progress: Progress, unit: string): Promise<{ chosen: Chosen; f32: Chosen; tried: Candidate[] }> {
  const auto = opts.quantize === 'auto';
  const f32Dir = cand(FLOAT32.name);
  await s.write(FLOAT32, f32Dir);
  const f32: Chosen = { spec: FLOAT32, dir: f32Dir, report: await s.measure(f32Dir, test, 'test float32') };
  const f32Judge = auto ? await s.measure(f32Dir, judgeOn, 'choice float32') : f32.report;
  const tried: Candidate[] = [];
  const row = (v: VariantSpec, r: Measurement): Candidate & { withinBudget: boolean } => ({ name: v.name, policy: v.policy, sparsity: v.sparsity, bytes: r.bytes, gzipBytes: r.gzipBytes, ...judge(f32Judge, r, judgeOn, auto, opts.maxDrop) });
  for (const v of s.candidates()) {
    const isRef = v.name === FLOAT32.name;
    const dir = isRef ? f32Dir : cand(v.name);
    if (!isRef) await s.write(v, dir);
    const rep = isRef ? f32Judge : await s.measure(dir, judgeOn, `${auto ? 'choice' : 'test'} ${v.name}`);
    const c = row(v, rep);
    tried.push(c);
    if (c.withinBudget) {
      const testRep = !auto ? rep : isRef ? f32.report : await s.measure(dir, test, `test ${v.name}`);
      if (s.listsReference && !isRef) tried.unshift(row(FLOAT32, f32Judge));
      return { chosen: { spec: v, dir, report: testRep }, f32, tried };
    }
  }
  // Nothing met the budget: ship float32 and say so.
  progress.onEvent?.({ type: 'warning', message: `no compressed ${opts.format === 'onnx' ? 'ONNX ' : ''}variant kept float32's predictions on at least ${100 - opts.maxDrop}% of the ${judgeOn.images.length} choice ${unit}; exported float32` });
  if (s.listsReference) tried.unshift(row(FLOAT32, f32Judge));
  return { chosen: f32, f32, tried };
}
