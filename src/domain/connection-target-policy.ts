/**
 * Which network addresses a stored connection may reach (config `connectionTargets`). Rules are
 * CIDR blocks with an optional port or port range: `10.0.0.0/8`, `192.168.1.5/32:5432`,
 * `::1/128:22`, `10.1.0.0/16:5432-5439`. A deny rule beats an allow rule; an address no rule names
 * is allowed, except that in multi-user mode the loopback, link-local (cloud metadata) and
 * unspecified addresses are refused unless an allow rule names them: a user's connection must not
 * become a way into the server's own host or its cloud credentials.
 *
 * Pure: the caller resolves host names and checks every address (see engines/target-guard.ts).
 */
import { BlockList, isIP } from 'node:net';

export interface ConnectionTargetRules {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
}

interface TargetRule {
  /** The rule as written in the config, named in refusals. */
  readonly text: string;
  readonly block: BlockList;
  readonly ports?: { readonly from: number; readonly to: number };
}

export type TargetDecision = { readonly allowed: true } | { readonly allowed: false; readonly rule: string };

/** Refused in multi-user mode unless allowed: loopback, link-local/metadata, unspecified. */
const MULTI_USER_DEFAULT_DENY = [
  '127.0.0.0/8',
  '::1/128',
  '0.0.0.0/8',
  '::/128',
  '169.254.0.0/16',
  'fe80::/10',
  '100.100.100.200/32',
] as const;

const RULE_PATTERN = /^([0-9a-fA-F.:]+)\/(\d{1,3})(?::(\d{1,5})(?:-(\d{1,5}))?)?$/;

export class ConnectionTargetRuleError extends Error {}

function parsePort(text: string, rule: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConnectionTargetRuleError(`connectionTargets rule '${rule}': ${text} is not a TCP port`);
  }
  return port;
}

function parseRule(text: string): TargetRule {
  const match = RULE_PATTERN.exec(text.trim());
  const address = match?.[1];
  const prefixText = match?.[2];
  const family = address === undefined ? 0 : isIP(address);
  if (!match || address === undefined || prefixText === undefined || family === 0) {
    throw new ConnectionTargetRuleError(
      `connectionTargets rule '${text}' is not <address>/<prefix>[:<port>[-<port>]] (e.g. 10.0.0.0/8, ::1/128:22)`,
    );
  }
  const prefix = Number(prefixText);
  if (prefix > (family === 4 ? 32 : 128)) {
    throw new ConnectionTargetRuleError(`connectionTargets rule '${text}': prefix /${prefix} is too long`);
  }
  const block = new BlockList();
  block.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  const from = match[3] === undefined ? undefined : parsePort(match[3], text);
  const to = match[4] === undefined ? from : parsePort(match[4], text);
  if (from !== undefined && to !== undefined && to < from) {
    throw new ConnectionTargetRuleError(`connectionTargets rule '${text}': the port range is reversed`);
  }
  return { text, block, ...(from !== undefined && to !== undefined ? { ports: { from, to } } : {}) };
}

/** `::ffff:127.0.0.1` is 127.0.0.1; a zone id (`fe80::1%eth0`) does not change the address. */
export function normaliseAddress(address: string): string {
  const bare = address.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  return mapped?.[1] ?? bare;
}

function matches(rule: TargetRule, address: string, port: number): boolean {
  if (rule.ports && (port < rule.ports.from || port > rule.ports.to)) return false;
  return rule.block.check(address, isIP(address) === 4 ? 'ipv4' : 'ipv6');
}

export class ConnectionTargetPolicy {
  private readonly allow: readonly TargetRule[];
  private readonly deny: readonly TargetRule[];
  private readonly defaultDeny: readonly TargetRule[];

  /** @throws ConnectionTargetRuleError naming the first malformed rule. */
  constructor(rules: ConnectionTargetRules, multiUser: boolean) {
    this.allow = rules.allow.map(parseRule);
    this.deny = rules.deny.map(parseRule);
    this.defaultDeny = multiUser ? MULTI_USER_DEFAULT_DENY.map(parseRule) : [];
  }

  /** No rule at all (single-user mode, nothing configured): every target is allowed as is. */
  get unrestricted(): boolean {
    return this.allow.length === 0 && this.deny.length === 0 && this.defaultDeny.length === 0;
  }

  /** The decision for one resolved IP address (not a host name) and port. */
  check(address: string, port: number): TargetDecision {
    const ip = normaliseAddress(address);
    if (isIP(ip) === 0) return { allowed: false, rule: 'not an IP address' };
    const denied = this.deny.find((rule) => matches(rule, ip, port));
    if (denied) return { allowed: false, rule: `deny ${denied.text}` };
    if (this.allow.some((rule) => matches(rule, ip, port))) return { allowed: true };
    const byDefault = this.defaultDeny.find((rule) => matches(rule, ip, port));
    if (byDefault) return { allowed: false, rule: `multi-user default deny ${byDefault.text}` };
    return { allowed: true };
  }
}
