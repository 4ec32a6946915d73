/** The wizard's dataset search: class folders of images or .txt, and manifests of texts or images by header. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classFolderCandidates, manifestKind } from './datasetScan';

test('class folders: two or more sub-folders with examples, counted per class; one class is no dataset', () => {
  const ws = '/w';
  const files = ['/w/tickets/billing/a.txt', '/w/tickets/billing/b.txt', '/w/tickets/shipping/c.txt', '/w/notes/only/x.txt'];
  const c = classFolderCandidates(files, () => ws);
  const t = c.find((x) => x.dir === '/w/tickets');
  assert.ok(t);
  assert.deepEqual([...t.classes.entries()], [['billing', 2], ['shipping', 1]]);
  assert.equal(c.find((x) => x.dir === '/w/notes'), undefined);
  assert.deepEqual(classFolderCandidates(files, () => undefined), []);
});

test('manifests: a text and a label column make a text manifest (CSV quoted, BOM, JSONL); path,label stays images', () => {
  assert.deepEqual(manifestKind('\uFEFF"Text","Category"', false), { kind: 'text', description: 'texts (text, category)' });
  assert.equal(manifestKind('{"utterance":"hi","intent":"greet"}', true).kind, 'text');
  assert.equal(manifestKind('path,label', false).kind, 'image');
  assert.equal(manifestKind('text,id', false).kind, 'image');
  assert.equal(manifestKind('not json', true).kind, 'image');
});
