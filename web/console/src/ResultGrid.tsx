/**
 * One statement's result in AG Grid. The rows the instance carries (at most `maxResultRows`) page in
 * the grid itself; a result the server cut short (`truncated`) is paged from the server instead when
 * it offers result pages (GET …/results/{n}?offset&limit), so every row can be reached.
 */
import { useEffect, useMemo, useState } from 'react';
import { AgGridReact } from 'ag-grid-react';
import { AllCommunityModule, ModuleRegistry, themeQuartz, type ColDef } from 'ag-grid-community';
import type { DlfApiClient, StatementResult } from '../../../src/client/api-client.js';
import { toCsv, saveBlob } from './csv.js';
import { isMissingEndpoint, readableError } from './errors.js';

ModuleRegistry.registerModules([AllCommunityModule]);

/** System fonts only: the console loads nothing from elsewhere (no web fonts). */
const theme = themeQuartz.withParams({
  fontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  headerFontFamily: 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  cellFontFamily: 'ui-monospace, "DejaVu Sans Mono", Menlo, monospace',
  fontSize: 13,
  spacing: 5,
});

/** Rows per page, in the grid and from the server. */
const PAGE_SIZE = 100;

type Row = Record<string, unknown>;

function columnsOf(schema: Record<string, string>[]): { field: string; name: string; type: string }[] {
  return schema.map((column, index) => {
    const [name = `column ${index + 1}`, type = ''] = Object.entries(column)[0] ?? [];
    return { field: `c${index}`, name, type };
  });
}

function rowsOf(rows: unknown[][]): Row[] {
  return rows.map((row) => Object.fromEntries(row.map((value, index) => [`c${index}`, value])));
}

function display(value: unknown): string {
  if (value === null || value === undefined) return 'NULL';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  return JSON.stringify(value);
}

interface Props {
  client: DlfApiClient;
  scriptName: string;
  instanceId: string;
  index: number;
  result: StatementResult;
}

export function ResultGrid({ client, scriptName, instanceId, index, result }: Props) {
  const columns = useMemo(() => columnsOf(result.schema), [result.schema]);
  const columnDefs = useMemo<ColDef<Row>[]>(
    () =>
      columns.map((column) => ({
        field: column.field,
        headerName: column.name,
        headerTooltip: column.type,
        valueFormatter: (params) => display(params.value),
        cellClass: (params) => (params.value === null ? 'cell-null' : undefined),
        resizable: true,
        sortable: true,
        filter: true,
      })),
    [columns],
  );

  // Server paging: only for a truncated result, and only when the server offers pages.
  const [serverPage, setServerPage] = useState<{ offset: number; total: number; rows: Row[] } | null>(null);
  const [pagingError, setPagingError] = useState<string | null>(null);
  const [offset, setOffset] = useState(0);

  useEffect(() => {
    if (!result.truncated) return;
    let cancelled = false;
    client
      .getResultPage(scriptName, instanceId, index, { offset, limit: PAGE_SIZE })
      .then((page) => {
        if (!cancelled) setServerPage({ offset: page.offset, total: page.rowCount, rows: rowsOf(page.rows) });
      })
      .catch((error: unknown) => {
        if (cancelled) return;
        // Without result pages the inline rows are all there is; say so rather than fail.
        setPagingError(isMissingEndpoint(error) ? null : readableError(error).message);
        setServerPage(null);
      });
    return () => {
      cancelled = true;
    };
  }, [client, scriptName, instanceId, index, offset, result.truncated]);

  const inlineRows = useMemo(() => rowsOf(result.rows), [result.rows]);
  const [downloadError, setDownloadError] = useState<string | null>(null);

  /** The whole result: from the server when it was cut short, else from the rows already here. */
  async function downloadCsv() {
    setDownloadError(null);
    const filename = `${scriptName}-${instanceId}-${index + 1}.csv`;
    try {
      if (result.truncated) {
        const response = await client.downloadResult(scriptName, instanceId, index, 'csv');
        saveBlob(await response.blob(), filename);
      } else {
        const csv = toCsv(
          columns.map((c) => c.name),
          result.rows,
        );
        saveBlob(new Blob([csv], { type: 'text/csv;charset=utf-8' }), filename);
      }
    } catch (error) {
      setDownloadError(readableError(error).message);
    }
  }
  const downloadButton = (
    <button className="quiet" onClick={() => void downloadCsv()}>
      Download CSV
    </button>
  );

  if (columns.length === 0) {
    return <p className="result-note">{result.message || 'The statement returned no rows.'}</p>;
  }

  if (serverPage) {
    const last = Math.min(serverPage.offset + serverPage.rows.length, serverPage.total);
    return (
      <div className="result-grid">
        <div className="pager" aria-label="Result pages">
          <button onClick={() => setOffset(Math.max(0, offset - PAGE_SIZE))} disabled={offset === 0}>
            Previous
          </button>
          <span>
            Rows {serverPage.total === 0 ? 0 : serverPage.offset + 1}–{last} of {serverPage.total}
          </span>
          <button onClick={() => setOffset(offset + PAGE_SIZE)} disabled={last >= serverPage.total}>
            Next
          </button>
          {downloadButton}
          {downloadError ? <span className="error-line">{downloadError}</span> : null}
        </div>
        <div className="grid-host">
          <AgGridReact<Row> theme={theme} rowData={serverPage.rows} columnDefs={columnDefs} />
        </div>
      </div>
    );
  }

  return (
    <div className="result-grid">
      <div className="result-summary">
        {result.rowCount} row{result.rowCount === 1 ? '' : 's'}
        {typeof result.duration === 'number' ? ` · ${result.duration.toFixed(3)} s` : ''}
        {result.truncated ? ' · cut short by the server’s row limit' : ''}
        {pagingError ? ` · pages unavailable: ${pagingError}` : ''} {downloadButton}
        {downloadError ? <span className="error-line">{downloadError}</span> : null}
      </div>
      <div className="grid-host">
        <AgGridReact<Row>
          theme={theme}
          rowData={inlineRows}
          columnDefs={columnDefs}
          pagination={inlineRows.length > PAGE_SIZE}
          paginationPageSize={PAGE_SIZE}
          paginationPageSizeSelector={false}
        />
      </div>
    </div>
  );
}
