/** SQL files under src/pg/sql, bundled as text (scripts/build.mjs, vitest.config.mts). */
declare module '*.sql' {
  const text: string;
  export default text;
}
