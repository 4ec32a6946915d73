/**
 * `train`: DATA decides the pipeline. Labelled texts (or --modality text)
 * take the text job (src/core/text/run.ts), everything else the image job
 * (pipeline.ts); both compose the same steps of pipeline.ts.
 */
import type { Progress } from '../events';
import type { TrainConfig } from '../runFolder';
import { detectModality } from '../text/dataset';
import { trainTextRun } from '../text/run';
import { type TrainReport, trainImageRun } from './pipeline';

export async function trainRun(cfg: TrainConfig, progress: Progress = {}): Promise<TrainReport> {
  return (await detectModality(cfg.data, cfg)) === 'text' ? trainTextRun(cfg, progress) : trainImageRun(cfg, progress);
}
