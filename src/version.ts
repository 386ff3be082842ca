import { version } from '../package.json';

/** Stamped by the build (esbuild define); absent when run from source. */
declare const __PGTWIN_BUILD__: string | undefined;

/** The release version: package.json's, also the meta-data's agent version. */
export const VERSION: string = version;
/** Version plus the commit and date of the build, for --version. */
export const BUILD: string = typeof __PGTWIN_BUILD__ === 'string' ? __PGTWIN_BUILD__ : `${version} (from source)`;
