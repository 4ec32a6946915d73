import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import sharp from 'sharp';
import { Rng } from '../rng';

/** Shapes the sample generator draws; each is a class. */
export const SAMPLE_CLASSES = ['circle', 'square', 'triangle', 'star'] as const;

export interface SampleOptions {
  /** Images per class, default 30. */
  perClass?: number;
  /** Classes (from SAMPLE_CLASSES), default the first 3. */
  classes?: number;
  /** Image side in pixels, default 160. */
  size?: number;
  /** Seed of every random choice, default 7. */
  seed?: number;
}

function shapeSvg(kind: string, cx: number, cy: number, r: number, fill: string, rot: number): string {
  switch (kind) {
    case 'circle':
      return `<circle cx="${cx}" cy="${cy}" r="${r}" fill="${fill}"/>`;
    case 'square':
      return `<rect x="${cx - r}" y="${cy - r}" width="${2 * r}" height="${2 * r}" fill="${fill}" transform="rotate(${rot} ${cx} ${cy})"/>`;
    case 'triangle': {
      const pts = [0, 1, 2].map((i) => {
        const a = ((rot + i * 120) * Math.PI) / 180;
        return `${cx + r * 1.2 * Math.cos(a)},${cy + r * 1.2 * Math.sin(a)}`;
      });
      return `<polygon points="${pts.join(' ')}" fill="${fill}"/>`;
    }
    default: {
      const pts = Array.from({ length: 10 }, (_, i) => {
        const a = ((rot + i * 36) * Math.PI) / 180;
        const rr = i % 2 ? r * 0.45 : r * 1.2;
        return `${cx + rr * Math.cos(a)},${cy + rr * Math.sin(a)}`;
      });
      return `<polygon points="${pts.join(' ')}" fill="${fill}"/>`;
    }
  }
}

/** One synthetic image: a shape of the class on a cluttered background, as SVG. */
export function sampleSvg(kind: string, rng: Rng, size: number): string {
  const hue = () => Math.floor(rng.next() * 360);
  const bg = `hsl(${hue()},${20 + rng.int(40)}%,${70 + rng.int(25)}%)`;
  const clutter = Array.from({ length: 6 }, () => {
    const w = 4 + rng.int(size / 6);
    return `<rect x="${rng.int(size)}" y="${rng.int(size)}" width="${w}" height="${4 + rng.int(size / 6)}" fill="hsl(${hue()},30%,60%)" opacity="0.5"/>`;
  }).join('');
  const r = size * (0.18 + rng.next() * 0.12);
  const cx = r * 1.2 + rng.next() * (size - 2.4 * r);
  const cy = r * 1.2 + rng.next() * (size - 2.4 * r);
  const fill = `hsl(${hue()},${60 + rng.int(30)}%,${30 + rng.int(25)}%)`;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}"><rect width="100%" height="100%" fill="${bg}"/>${clutter}${shapeSvg(kind, cx, cy, r, fill, rng.int(360))}</svg>`;
}

/**
 * Writes a small labelled image dataset (one folder per shape class, JPEG
 * and PNG files) made by code. Returns the file paths by class.
 */
export async function makeSampleDataset(dir: string, opts: SampleOptions = {}): Promise<Record<string, string[]>> {
  const perClass = opts.perClass ?? 30;
  const classes = SAMPLE_CLASSES.slice(0, opts.classes ?? 3);
  const size = opts.size ?? 160;
  const rng = new Rng(opts.seed ?? 7);
  const out: Record<string, string[]> = {};
  for (const c of classes) {
    await fs.mkdir(path.join(dir, c), { recursive: true });
    out[c] = [];
    for (let i = 0; i < perClass; i++) {
      const svg = Buffer.from(sampleSvg(c, rng, size));
      const png = i % 4 === 3;
      const file = path.join(dir, c, `${c}-${String(i).padStart(3, '0')}.${png ? 'png' : 'jpg'}`);
      const img = sharp(svg);
      await (png ? img.png() : img.jpeg({ quality: 85 })).toFile(file);
      out[c].push(file);
    }
  }
  return out;
}
