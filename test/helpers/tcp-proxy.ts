/**
 * A TCP forwarder that a test can cut, to take one node off the network to its database without
 * touching the database itself. While cut, open connections are destroyed and new ones are
 * accepted but never forwarded (they hang, as across a dead link), until `restore()`.
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let cut = false;
  const server = net.createServer((client) => {
    open.add(client);
    client.on('error', () => undefined);
    client.on('close', () => open.delete(client));
    if (cut) return; // Accepted, never answered: a black hole.
    const upstream = net.connect(targetPort, targetHost);
    open.add(upstream);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      open.delete(upstream);
      client.destroy();
    });
    client.on('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no port');
  const destroyAll = () => {
    for (const socket of open) socket.destroy();
    open.clear();
  };
  return {
    port: address.port,
    cut() {
      cut = true;
      destroyAll();
    },
    restore() {
      cut = false;
      destroyAll(); // The hanging connections die; clients reconnect through a working link.
    },
    close() {
      destroyAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
