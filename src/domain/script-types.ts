/**
 * The script types as DataArts spells them: a leaf module without imports, so the typed API client
 * (src/client, also bundled into the web console) shares the server's list instead of a copy.
 */
/** Script types the API accepts, exactly as DataArts spells them (case-sensitive). */
export const SCRIPT_TYPES = [
  'FlinkSQL',
  'DLISQL',
  'SparkSQL',
  'HiveSQL',
  'DWSSQL',
  'RDSSQL',
  'Shell',
  'PRESTO',
  'ClickHouseSQL',
  'HetuEngineSQL',
  'PYTHON',
  'ImpalaSQL',
  'Spark Python',
  // The Python SDK's spelling of 'Spark Python'; accepted and echoed back as sent.
  'SparkPython',
] as const;
