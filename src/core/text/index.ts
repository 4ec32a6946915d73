/** Text classification: datasets of labelled texts, text backbones, the TF-IDF baseline. */
export * from './decode';
export * from './tokenize';
export * from './vocab';
export * from './dataset';
export * from './tfidf';
export * from './encoder';
export * from './embed';
export * from './onnxGraph';
export * from './sample';
export * from './run';
export * from './predict';
export * from './scan';
export * from './export';
export * from './snippet';
