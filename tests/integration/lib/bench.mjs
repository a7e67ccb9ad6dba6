// Runs chat-bench (apps/chat-bench) for the tests: the bench smoke (bench/smoke.test.mjs) and the
// cluster scenario against the cluster topology (cluster/bench.test.mjs).
import { spawn } from 'node:child_process';

export const BENCH_BIN = process.env.CHAT_BENCH_BIN || '/work/main/build-bench/bin/chat-bench';

/** Runs chat-bench to completion; resolves {code, stdout, stderr, lines, result (the parsed RESULT line), describe}. */
export function runBench(args, timeoutMs = 120000) {
  return new Promise((resolve, reject) => {
    const p = spawn(BENCH_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.setEncoding('utf8');
    p.stderr.setEncoding('utf8');
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => reject(new Error(`cannot run ${BENCH_BIN}: ${e.message}`)));
    p.on('exit', (code) => {
      clearTimeout(timer);
      const lines = stdout.split('\n').filter((l) => l.startsWith('RESULT '));
      let result;
      if (lines.length === 1) result = JSON.parse(lines[0].slice('RESULT '.length));
      resolve({ code, stdout, stderr, lines: lines.length, result, describe: `chat-bench ${args.join(' ')}\n${stdout}\n${stderr}` });
    });
  });
}
