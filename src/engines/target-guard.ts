/**
 * Enforces the connection target rules (domain/connection-target-policy.ts) in front of every
 * engine of a stored connection: before a run, a recovery or a connection test reaches the network,
 * the host is resolved, every address it resolves to is checked, and the engine then dials the
 * checked address itself — a DNS answer cannot change between the check and the connect.
 *
 * Residual risk, documented: with TLS on (PostgreSQL `sslEnable`, ClickHouse over HTTPS) the driver
 * needs the host name to verify the certificate, so it resolves the name again; a name whose DNS
 * answer flips between the two lookups could still reach a refused address. Certificate
 * verification makes that attack need a certificate for the name.
 */
import { lookup } from 'node:dns/promises';
import { isIP, isIPv4 } from 'node:net';
import type { ConnectionTargetPolicy } from '../domain/connection-target-policy.js';
import { normaliseAddress } from '../domain/connection-target-policy.js';
import { DlfError } from '../domain/dlf-error.js';
import type { RunHandle } from '../domain/instance.js';
import type { ScriptType } from '../domain/script.js';
import type {
  Engine,
  EngineCapabilities,
  EngineOutcome,
  EngineProbe,
  EngineRunContext,
  EngineRunRequest,
} from './engine.js';

/** Host names as DNS spells them; anything else (a socket path, a URL) is no network target. */
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

export interface NetworkTarget {
  /** As configured: an IP address or a host name ('' means the driver's default, localhost). */
  readonly host: string;
  readonly port: number;
}

export class TargetGuard {
  constructor(
    private readonly policy: ConnectionTargetPolicy,
    private readonly resolve: (host: string) => Promise<string[]> = async (host) =>
      (await lookup(host, { all: true, verbatim: true })).map((a) => a.address),
  ) {}

  /**
   * Resolves `target`, checks every address, and returns the one to dial.
   * @throws DlfError OPENDLF.0611 naming the rule that refuses it (never the resolved address);
   *   an Error when the name cannot be resolved (a connectivity problem like any other).
   */
  async admit(target: NetworkTarget): Promise<string> {
    const shown = `${target.host.includes(':') ? `[${target.host}]` : target.host || 'localhost'}:${target.port}`;
    const refuse = (rule: string) =>
      new DlfError(
        'OPENDLF.0611',
        `The connection target ${shown} is not allowed on this server (rule: ${rule}).`,
      );
    // Nothing to enforce: the driver connects exactly as configured (single-user convenience).
    if (this.policy.unrestricted) return target.host;
    // Drivers read an empty host as localhost (pg: a local socket), so it is checked as such.
    const host = target.host === '' ? 'localhost' : target.host;
    let addresses: string[];
    if (isIP(normaliseAddress(host)) !== 0) {
      addresses = [host];
    } else {
      if (!HOST_NAME.test(host)) throw refuse('not an IP address or host name');
      try {
        addresses = await this.resolve(host);
      } catch {
        throw new Error(`the host name "${host}" could not be resolved`);
      }
      if (addresses.length === 0) throw new Error(`the host name "${host}" could not be resolved`);
    }
    for (const address of addresses) {
      const decision = this.policy.check(address, target.port);
      if (!decision.allowed) throw refuse(decision.rule);
    }
    // Every address passed; dial an IPv4 one when there is one (servers commonly listen on IPv4
    // only, and a name like localhost lists ::1 first), as the driver would have tried it too.
    return addresses.find((address) => isIPv4(normaliseAddress(address))) ?? addresses[0]!;
  }
}

/**
 * An engine whose every network use passes the TargetGuard first. `build(connectHost)` makes the
 * real engine dialling `connectHost`; one is kept per admitted address (pools stay warm), the one
 * for the configured host serves `name`, `capabilities` and `supports`, and — when the driver needs
 * the name (TLS) — the runs too.
 */
export class TargetCheckedEngine implements Engine {
  readonly name: string;
  readonly capabilities: EngineCapabilities;
  readonly recover?: (handle: RunHandle) => Promise<void>;
  private readonly byName: Engine;
  private readonly byAddress = new Map<string, Engine>();

  constructor(
    private readonly guard: TargetGuard,
    private readonly target: NetworkTarget,
    /** False when the driver must dial the configured name (TLS certificate verification). */
    private readonly pinAddress: boolean,
    private readonly build: (connectHost: string) => Engine,
  ) {
    this.byName = build(target.host);
    this.name = this.byName.name;
    this.capabilities = this.byName.capabilities;
    if (this.byName.recover) {
      this.recover = async (handle) => {
        const engine = await this.admitted();
        await engine.recover?.(handle);
      };
    }
  }

  get connectionProbe(): EngineProbe {
    return this.byName.connectionProbe;
  }

  supports(type: ScriptType): boolean {
    return this.byName.supports(type);
  }

  /** Throws like TargetGuard.admit. */
  async admitted(): Promise<Engine> {
    const address = await this.guard.admit(this.target);
    if (!this.pinAddress || address === this.target.host) return this.byName;
    let engine = this.byAddress.get(address);
    if (!engine) {
      engine = this.build(address);
      this.byAddress.set(address, engine);
    }
    return engine;
  }

  async run(request: EngineRunRequest, context: EngineRunContext): Promise<EngineOutcome> {
    let engine: Engine;
    try {
      engine = await this.admitted();
    } catch (error) {
      // A refused or unresolvable target is the run's failure, like an unreachable database.
      return { kind: 'failed', results: [], message: (error as Error).message, reason: 'connect_failed' };
    }
    return engine.run(request, context);
  }

  async close(): Promise<void> {
    const engines = [this.byName, ...this.byAddress.values()];
    this.byAddress.clear();
    await Promise.all(engines.map((engine) => engine.close()));
  }
}
