/**
 * A TCP forwarder that a test can cut, to take one node off the network to its database without
 * touching the database itself.
 *
 *  - `cut()`: open connections are destroyed (the client sees a reset) and new ones are accepted
 *    but never forwarded (they hang, as across a dead link), until `restore()`.
 *  - `pause()`: a silent cut — nothing is forwarded in either direction and nothing is closed, not
 *    even by a reset: open connections stay open and simply get no answers, new ones are accepted
 *    and get nothing either (as when a firewall or a partitioned network drops every packet).
 *    `resume()` delivers what was held back, in order, as a healed link would (including the closes
 *    of sockets a side gave up on meanwhile), and connects the connections accepted meanwhile.
 */
import net from 'node:net';

export interface TcpProxy {
  readonly port: number;
  cut(): void;
  restore(): void;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  /** Connections accepted while paused, connected upstream on resume. */
  const held = new Set<net.Socket>();
  /** Both sides of every forwarded connection, paused and resumed together. */
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  let cut = false;
  let paused = false;

  const forward = (client: net.Socket) => {
    const upstream = net.connect(targetPort, targetHost);
    open.add(upstream);
    const pair = { client, upstream };
    pairs.add(pair);
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => {
      open.delete(upstream);
      pairs.delete(pair);
      client.destroy();
    });
    client.on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const server = net.createServer((client) => {
    open.add(client);
    client.on('error', () => undefined);
    client.on('close', () => {
      open.delete(client);
      held.delete(client);
    });
    if (cut) return; // Accepted, never answered: a black hole.
    if (paused) {
      // Not read while paused: its bytes and its close wait in the kernel until resume.
      client.pause();
      held.add(client);
      return;
    }
    forward(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address !== 'object') throw new Error('proxy has no port');
  const destroyAll = () => {
    for (const socket of open) socket.destroy();
    open.clear();
    held.clear();
    pairs.clear();
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
    pause() {
      paused = true;
      // Neither side is read: what either sends (bytes, a FIN) stays in the kernel's buffers.
      for (const { client, upstream } of pairs) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
    },
    resume() {
      paused = false;
      for (const { client, upstream } of pairs) {
        client.pipe(upstream);
        upstream.pipe(client);
      }
      for (const client of held) forward(client);
      held.clear();
    },
    close() {
      destroyAll();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
