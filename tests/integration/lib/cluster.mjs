// Test harness for cluster mode: Redis, Kafka (KRaft), FerretDB and nginx started natively on
// loopback through scripts/services/*.sh (each dies with this test process: --watch-pid), then
// N chatd instances and chat-workers pointed at them. Every port is picked free at start.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { MongoClient } from 'mongodb';

import { JWT_SECRET, freePort, makeTempDir, spawnTracked, startChatd, waitForListening } from './chatd.mjs';

const run = promisify(execFile);
const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SCRIPTS = process.env.CHAT_SCRIPTS || path.resolve(HERE, '../../../scripts');
export const WORKER_BIN = process.env.CHAT_WORKER_BIN || path.resolve(HERE, '../../../build/bin/chat-worker');

export { freePort };

/**
 * start(port) on a fresh free port, again on another (at most `attempts` times) when it fails: a
 * port can still be lost to a test process that drew the same one. Resolves to the port it started on.
 */
async function onFreePort(start, { attempts = 3, alsoFreeAt = 0 } = {}) {
  for (let i = 1; ; i++) {
    const port = await freePort({ alsoFreeAt });
    try {
      await start(port);
      return port;
    } catch (e) {
      if (i >= attempts) throw e;
    }
  }
}

/** Runs scripts/services/<script> with args; rejects with its output on failure. */
export async function service(script, args, { timeoutMs = 180000 } = {}) {
  try {
    const r = await run('bash', [path.join(SCRIPTS, 'services', script), ...args], {
      timeout: timeoutMs,
      maxBuffer: 16 << 20,
    });
    return r.stdout;
  } catch (e) {
    throw new Error(`${script} ${args.join(' ')} failed: ${e.message}\n${e.stdout || ''}\n${e.stderr || ''}`);
  }
}

const watch = () => ['--watch-pid', String(process.pid)];

export async function startRedis({ cluster = false } = {}) {
  const dir = makeTempDir('chat-redis-');
  if (!cluster) {
    const startOn = (port) => service('redis.sh', ['start', '--dir', dir, '--port', String(port), ...watch()]);
    const port = await onFreePort(startOn);
    return {
      dir,
      ports: [port],
      url: `redis://127.0.0.1:${port}`,
      stop: () => service('redis.sh', ['stop', '--dir', dir]),
      start: () => startOn(port),
    };
  }
  const startOn = (ports) =>
    service('redis.sh', ['start-cluster', '--dir', dir, '--ports', ports.join(','), ...watch()]);
  let ports;
  for (let attempt = 1; ; attempt++) {
    ports = [];
    while (ports.length < 3) ports.push(await freePort({ alsoFreeAt: 10000 }));
    try {
      await startOn(ports);
      break;
    } catch (e) {
      if (attempt >= 3) throw e;
      await service('redis.sh', ['stop', '--dir', dir]);
    }
  }
  return {
    dir,
    ports,
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    stop: () => service('redis.sh', ['stop', '--dir', dir]),
    start: () => startOn(ports),
  };
}

export async function startKafka({ partitions = 6 } = {}) {
  let dir;
  const port = await onFreePort(async (p) => {
    dir = makeTempDir('chat-kafka-'); // a fresh one each time: the storage is formatted for its ports
    await service('kafka.sh', ['start', '--dir', dir, '--port', String(p), '--controller-port',
      String(await freePort()), '--partitions', String(partitions), ...watch()], { timeoutMs: 240000 });
  });
  return {
    dir,
    brokers: `127.0.0.1:${port}`,
    stop: () => service('kafka.sh', ['stop', '--dir', dir], { timeoutMs: 60000 }),
    start: () => service('kafka.sh', ['start', '--dir', dir, ...watch()], { timeoutMs: 240000 }),
    tool: (cls, ...args) => service('kafka.sh', ['run', '--dir', dir, cls, ...args], { timeoutMs: 120000 }),
  };
}

export async function startFerret() {
  const dir = makeTempDir('chat-ferret-');
  const startOn = (port) => service('ferretdb.sh', ['start', '--dir', dir, '--port', String(port), ...watch()]);
  const port = await onFreePort(startOn);
  return {
    dir,
    port,
    uri: (db = 'chat') => `mongodb://127.0.0.1:${port}/${db}`,
    stop: () => service('ferretdb.sh', ['stop', '--dir', dir]),
    start: () => startOn(port),
  };
}

export async function startNginx(upstreamPorts) {
  const dir = makeTempDir('chat-nginx-');
  const port = await onFreePort((p) =>
    service('nginx.sh', ['start', '--dir', dir, '--port', String(p), '--upstreams', upstreamPorts.join(','),
      '--sticky', 'cookie', ...watch()]));
  return {
    dir,
    port,
    url: `http://127.0.0.1:${port}`,
    reload: (ports) => service('nginx.sh', ['reload', '--dir', dir, '--upstreams', ports.join(','), '--sticky', 'cookie']),
    stop: () => service('nginx.sh', ['stop', '--dir', dir]),
  };
}

/** chatd in cluster mode on a fixed port (so nginx's upstream survives a restart). */
export async function startClusterChatd({ port, instance, mongoUri, redisUrl, kafkaBrokers, topic, env = {}, args = [] }) {
  return startChatd({
    args: ['--port', String(port), ...args],
    env: {
      MONGODB_URI: mongoUri,
      REDIS_URL: redisUrl,
      KAFKA_BROKERS: kafkaBrokers,
      KAFKA_TOPIC: topic,
      INSTANCE_ID: instance,
      HEARTBEAT_INTERVAL: '500ms',
      PRESENCE_TTL: '3s',
      KAFKA_DELIVERY_TIMEOUT: '30s',
      ...env,
    },
    timeoutMs: 30000,
  });
}

/** A chat-worker; resolves once its metrics endpoint is up. */
export async function startWorker({ mongoUri, kafkaBrokers, topic, group = 'chat-worker', env = {} }) {
  const { proc, output } = spawnTracked(WORKER_BIN, [], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME || '/tmp',
      ASAN_OPTIONS: process.env.ASAN_OPTIONS,
      UBSAN_OPTIONS: process.env.UBSAN_OPTIONS,
      LSAN_OPTIONS: process.env.LSAN_OPTIONS,
      MONGODB_URI: mongoUri,
      KAFKA_BROKERS: kafkaBrokers,
      KAFKA_TOPIC: topic,
      KAFKA_GROUP: group,
      METRICS_PORT: '0',
      BATCH_WAIT_MS: '20',
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  const describe = () => `chat-worker\n${output().slice(-4000)}`;
  const port = await waitForListening(proc, /metrics on http:\/\/[^\s:]+:(\d+)/, {
    name: 'chat-worker', bin: WORKER_BIN, timeoutMs: 30000, text: output, describe,
  });
  return {
    proc,
    port,
    url: `http://127.0.0.1:${port}`,
    output,
    describe,
    kill: (signal = 'SIGKILL') => {
      proc.kill(signal);
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', (code, sig) => resolve(code ?? sig));
      });
    },
  };
}

/** A MongoDB client on the FerretDB (the tests' view of what the workers stored). */
export async function mongoClient(uri) {
  const c = new MongoClient(uri, { serverSelectionTimeoutMS: 5000, directConnection: true });
  await c.connect();
  return c;
}

export { JWT_SECRET };
