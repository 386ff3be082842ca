/** SQL files bundled as text (esbuild's text loader; vitest's sql-text plugin). */
declare module '*.sql' {
  const text: string;
  export default text;
}
