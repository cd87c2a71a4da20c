// A queue URL to the connection BullMQ (ioredis) takes. `redis://[user:password@]host:port[/db]`,
// or `rediss://...` for TLS (the server's certificate is checked against Node's CA store, or
// against the PEM file named by OPD_REDIS_CA). Password and TLS settings pass through as they are.

import { readFileSync } from 'node:fs';

export interface RedisOptions {
  host: string;
  port: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: { servername: string; ca?: Buffer };
  /** BullMQ workers block on Redis; ioredis must retry forever (Redis restarts, R-queue rows). */
  maxRetriesPerRequest: null;
  enableOfflineQueue: true;
}

export function redisOptions(url: string, env: NodeJS.ProcessEnv = process.env): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--queue ${url}: not a URL; give redis://HOST:PORT (or rediss:// for TLS, redis://:PASSWORD@HOST:PORT with a password)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new Error(`--queue ${url}: scheme ${u.protocol} is not redis: or rediss:; give redis://HOST:PORT`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined;
  if (db !== undefined && !Number.isInteger(db)) throw new Error(`--queue ${url}: database "${u.pathname.slice(1)}" is not a number; give redis://HOST:PORT/0`);
  const ca = env.OPD_REDIS_CA;
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(db !== undefined ? { db } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: u.hostname, ...(ca ? { ca: readFileSync(ca) } : {}) } } : {}),
    maxRetriesPerRequest: null,
    enableOfflineQueue: true,
  };
}

/** The URL without its password, for logs and errors. */
export const redactUrl = (url: string) => url.replace(/\/\/([^@/]*):[^@/]*@/, '//$1:***@');

/**
 * Connect once, without retrying, and PING: a wrong address, password or TLS setting is an error
 * at start-up naming the URL, instead of the silent retrying a running queue does.
 */
export async function checkRedis(url: string, conn: RedisOptions = redisOptions(url)): Promise<void> {
  const { default: IORedis } = await import('ioredis');
  const client = new IORedis({ ...conn, maxRetriesPerRequest: 0, enableOfflineQueue: true, retryStrategy: () => null, lazyConnect: true, connectTimeout: 10_000 });
  let last: Error | undefined;
  client.on('error', (e: Error) => (last = e));
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new Error(`--queue ${redactUrl(url)}: ${(last ?? (e as Error)).message}; check the address, the password (redis://:PASSWORD@HOST:PORT) and TLS (rediss://)`);
  } finally {
    client.disconnect();
  }
}
