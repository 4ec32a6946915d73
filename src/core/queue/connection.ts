import type { ConnectionOptions } from 'bullmq';
import { HeadstartError } from '../errors';

/**
 * A queue address given as `redis://[user:password@]host:port[/db]` (or
 * `rediss://` for TLS). The password never leaves this object in a message:
 * everything that is printed or written uses `redacted`.
 */
export interface QueueTarget {
  /** The URL with any credentials replaced by `***`: safe to log and to write to run.json. */
  redacted: string;
  /** ioredis options for BullMQ's connections. */
  connection: ConnectionOptions & { host: string; port: number };
}

/** The URL with user and password replaced: `redis://***@host:port`. Unparseable input is redacted whole. */
export function redactQueueUrl(url: string): string {
  try {
    const u = new URL(url);
    const auth = u.username || u.password ? '***@' : '';
    return `${u.protocol}//${auth}${u.host}${u.pathname && u.pathname !== '/' ? u.pathname : ''}`;
  } catch {
    return '(unparseable queue URL)'; // it may hold a password: never echo it
  }
}

/** Parses --queue; a bad URL is a one-line error that does not echo credentials. */
export function parseQueueUrl(url: string): QueueTarget {
  const redacted = redactQueueUrl(url);
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new HeadstartError('BAD_INPUT', '--queue expects redis://[user:password@]HOST:PORT[/DB] (the value given is not a URL)');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw new HeadstartError('BAD_INPUT', `--queue expects a redis:// or rediss:// URL (got ${redacted})`);
  if (!u.hostname) throw new HeadstartError('BAD_INPUT', `--queue needs a host (got ${redacted})`);
  const port = u.port ? Number(u.port) : 6379;
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new HeadstartError('BAD_INPUT', `--queue: the database after the host must be a number (got ${redacted})`);
  return {
    redacted,
    connection: {
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port,
      db,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === 'rediss:' ? {} : undefined,
    },
  };
}

/** Prefix of every key Headstart makes in Redis (BullMQ's own default is 'bull'). */
export const QUEUE_PREFIX = 'headstart';
/** The queue extraction shards go to. */
export const EXTRACT_QUEUE = 'extract';
/** The queue sweep trials go to (one head configuration on cached vectors per job). */
export const EXPERIMENT_QUEUE = 'experiment';
