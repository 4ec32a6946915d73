declare module 'bmp-js' {
  /** Decoded BMP: `data` holds 4 bytes a pixel in A, B, G, R order. */
  export function decode(buf: Buffer): { width: number; height: number; data: Buffer };
  const bmp: { decode: typeof decode };
  export default bmp;
}
