/**
 * Headstart's version, read from package.json in this one place (esbuild
 * inlines the field into each bundle): the CLI's --version, the export's
 * metadata.json and the ONNX producer version say the same.
 */
import { name, version } from '../../package.json';

export const PACKAGE_NAME: string = name;
export const VERSION: string = version;
