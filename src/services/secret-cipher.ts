/**
 * Seals connection secrets at rest with AES-256-GCM (a fresh 96-bit IV per value, the auth tag
 * checked on open). Sealed values look like `enc:v1:<iv>:<tag>:<ciphertext>` (base64url parts), so a
 * store row never holds a secret in clear and a tampered value fails to open instead of decrypting
 * to garbage.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { SECRET_CONFIG_KEYS, type ConnectionConfig } from '../domain/connection.js';

const PREFIX = 'enc:v1:';

export class SecretCipher {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the secret key must be 32 bytes (AES-256)');
  }

  seal(plain: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    const tag = cipher.getAuthTag();
    return `${PREFIX}${iv.toString('base64url')}:${tag.toString('base64url')}:${body.toString('base64url')}`;
  }

  open(sealed: string): string {
    if (!sealed.startsWith(PREFIX)) throw new Error('value is not sealed');
    const [iv, tag, body] = sealed.slice(PREFIX.length).split(':');
    if (iv === undefined || tag === undefined || body === undefined)
      throw new Error('malformed sealed value');
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
      'utf8',
    );
  }

  /** Whether a value has the sealed form. Clients must never send one (see ConnectionService). */
  isSealed(value: unknown): boolean {
    return typeof value === 'string' && value.startsWith(PREFIX);
  }

  /** Seals every non-empty secret value of a config. */
  sealConfig(config: ConnectionConfig): ConnectionConfig {
    const out = { ...config };
    for (const key of SECRET_CONFIG_KEYS) {
      const value = out[key];
      if (typeof value === 'string' && value !== '' && !value.startsWith(PREFIX)) out[key] = this.seal(value);
    }
    return out;
  }

  /** Opens every sealed secret value of a config (for engines only; never for responses). */
  openConfig(config: ConnectionConfig): ConnectionConfig {
    const out = { ...config };
    for (const key of SECRET_CONFIG_KEYS) {
      const value = out[key];
      if (typeof value === 'string' && value.startsWith(PREFIX)) out[key] = this.open(value);
    }
    return out;
  }
}
