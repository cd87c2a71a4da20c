// The teacher server's stop (docs/reliability.md R19): requests that arrived before close() or
// SIGTERM are answered, idle keep-alive connections do not hold it up, and a client holding a
// half-sent request is cut after the drain period; `opd teacher serve` then exits 0. Nothing here
// measures time: a server that fails to stop shows up as the test's timeout.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { mkdtempSync, readFileSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { initModelDir, tinyConfig } from '../student/model/init.ts';
import { LocalTeacher } from './local.ts';
import { spawnTeacherServe } from './serve-child.ts';
import { TeacherServer } from './server.ts';

const root = mkdtempSync(join(tmpdir(), 'opd-server-drain-'));
let dir: string;
let teacher: LocalTeacher;

before(async () => {
  dir = (await initModelDir(join(root, 'm'), tinyConfig({ max_position_embeddings: 64 }), 11)).dir;
  teacher = await LocalTeacher.open(dir, { topK: 2, threads: 1 });
});
after(() => teacher.close());

const BODY = (i: number) => JSON.stringify({ prompt: [1, 2 + i, 3, 4 + i], max_tokens: 1, prompt_logprobs: 1 });
const REQUEST = (i: number) => `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(BODY(i))}\r\n\r\n${BODY(i)}`;

/** A raw connection to `url`; `text` collects everything the server sends, `closed` resolves when the connection ends. */
async function connect(url: string): Promise<{ socket: net.Socket; text: () => string; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let text = '';
  socket.on('data', (d) => (text += d));
  socket.on('error', () => {}); // a reset shows as a missing answer below
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, text: () => text, closed };
}

/** The status code of each answer on a connection's text (several when keep-alive pipelined). */
const statuses = (text: string) => [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));

test('close(): requests sent on fresh connections just before it are answered; idle keep-alive connections do not hold it up', { timeout: 60_000 }, async () => {
  // A drain period far longer than the test's timeout: only open requests may delay close().
  const s = await TeacherServer.start(teacher, { port: 0, modelName: 'tiny', drainMs: 600_000 });
  const agent = new http.Agent({ keepAlive: true });
  const idle = await new Promise<number>((resolve, reject) =>
    http
      .request(`${s.url}/v1/completions`, { method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => res.resume().once('end', () => resolve(res.statusCode!)))
      .once('error', reject)
      .end(BODY(0)),
  );
  assert.equal(idle, 200);
  assert.equal(Object.values(agent.freeSockets).flat().length, 1, 'one idle keep-alive connection is left open');
  const conns = await Promise.all(Array.from({ length: 8 }, () => connect(s.url)));
  // Same tick: the requests are in the server's kernel buffers (some connections not even accepted) when close() starts.
  conns.forEach((c, i) => c.socket.write(REQUEST(i)));
  const closing = s.close();
  await Promise.all(conns.map((c) => c.closed));
  conns.forEach((c, i) => {
    assert.deepEqual(statuses(c.text()), [200], `connection ${i} got no answer: ${JSON.stringify(c.text().slice(0, 200))}`);
    assert.match(c.text(), /\r\nconnection: close\r\n/i, `connection ${i}: the answer closes the connection`);
    assert.match(c.text(), /"prompt_logprobs":\[null,/, `connection ${i}: a scored answer`);
  });
  await closing; // would wait for the whole drain period if the idle keep-alive connection counted
  agent.destroy();
  await assert.rejects(connect(s.url), /ECONNREFUSED/, 'no new connections after close()');
});

test('close(): a half-sent request is cut after the drain period; a request beside it is answered', { timeout: 60_000 }, async () => {
  // The period is the bound for the half-sent requests, and ample time for the whole one beside them.
  const s = await TeacherServer.start(teacher, { port: 0, modelName: 'tiny', drainMs: 3000 });
  const halfBody = await connect(s.url);
  halfBody.socket.write(REQUEST(1).slice(0, -5)); // headers and most of the body
  const halfHeaders = await connect(s.url);
  halfHeaders.socket.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Le');
  const whole = await connect(s.url);
  whole.socket.write(REQUEST(2));
  await s.close();
  await Promise.all([halfBody.closed, halfHeaders.closed, whole.closed]);
  assert.deepEqual(statuses(whole.text()), [200]);
  assert.deepEqual(statuses(halfBody.text()), [], 'a half-sent request gets no answer');
  assert.deepEqual(statuses(halfHeaders.text()), []);
});

test('cut() during close() (a second signal) ends the drain at once', { timeout: 60_000 }, async () => {
  const s = await TeacherServer.start(teacher, { port: 0, modelName: 'tiny', drainMs: 600_000 });
  const half = await connect(s.url);
  half.socket.write(REQUEST(0).slice(0, -5));
  const closing = s.close();
  s.cut();
  await closing; // the drain period alone would outlast the test's timeout
  await half.closed;
  assert.deepEqual(statuses(half.text()), []);
});

test('opd teacher serve: SIGTERM answers requests sent just before it, cuts a half-sent one after --drain-seconds, exits 0', { timeout: 120_000 }, async () => {
  // started as a program: bin/opd.mjs's shell lines exec node with glibc's mmap threshold set, in the same process
  const { child, url, exited, stderr } = await spawnTeacherServe(['--model', dir, '--port', '0', '--max-logprobs', '1', '--threads', '1', '--drain-seconds', '5'], { asProgram: true, env: { MALLOC_MMAP_THRESHOLD_: undefined } });
  assert.equal(realpathSync(`/proc/${child.pid}/exe`), realpathSync(process.execPath), 'the launcher exec\'d node: the pid SIGTERM goes to is node\'s');
  assert.ok(readFileSync(`/proc/${child.pid}/environ`, 'latin1').split('\0').includes('MALLOC_MMAP_THRESHOLD_=1048576'), 'the launcher set the mmap threshold');
  const half = await connect(url);
  half.socket.write(REQUEST(0).slice(0, -3));
  const conns = await Promise.all(Array.from({ length: 8 }, () => connect(url)));
  conns.forEach((c, i) => c.socket.write(REQUEST(i)));
  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr());
  await Promise.all([half.closed, ...conns.map((c) => c.closed)]);
  conns.forEach((c, i) => assert.deepEqual(statuses(c.text()), [200], `connection ${i} got no answer: ${JSON.stringify(c.text().slice(0, 200))}`));
  assert.deepEqual(statuses(half.text()), []);
  assert.match(stderr(), /1 connection\(s\) still open after the drain period closed/);
});
