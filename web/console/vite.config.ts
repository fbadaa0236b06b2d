// Builds the web console into dist/console, served by the server at /console (src/http/console-routes.ts).
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  plugins: [react()],
  // `npx vite --config web/console/vite.config.ts`: hot reload on :5173, the API from a local server.
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
  build: {
    outDir: fileURLToPath(new URL('../../dist/console', import.meta.url)),
    emptyOutDir: true,
    // The editor and the grid are most of the bundle; one chunk each keeps the page's first load cacheable.
    chunkSizeWarningLimit: 2048,
    rolldownOptions: {
      output: {
        codeSplitting: {
          groups: [
            { name: 'grid', test: /node_modules[\\/]ag-grid/ },
            {
              name: 'editor',
              test: /node_modules[\\/](@codemirror|@lezer|@marijn|crelt|style-mod|w3c-keyname)/,
            },
            { name: 'react', test: /node_modules[\\/](react|react-dom|scheduler)[\\/]/ },
          ],
        },
      },
    },
  },
});
