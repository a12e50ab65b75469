'use strict';
/**
 * Scenario driver for the official RocketMQ 5.x Node.js client (npm rocketmq-client-nodejs, gRPC). A JSON-lines CLI:
 * stdout carries only JSON lines; the client's log goes to stderr (never to ~/logs/rocketmq, its default file).
 *
 *   produce --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction] [--commit|--rollback|--no-end]
 *           [--linger S] [--plaintext|--tls] [--request-timeout-ms MS] [--ca-file PEM] [--client-home DIR]
 *
 * One JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...}, "message_group",
 * "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end": "commit"|"rollback"|"none"}. Prints
 * per message, in input order, {"ok": true, "index", "message_id", "sent_at_ms", "queue", "queue_id", "offset",
 * ["transaction_id"], ["recall_handle"], ["delivery_timestamp_ms"], ["end"]} or {"ok": false, "index", ["stage":
 * "startup"], "error"}; per transaction check {"check": true, "message_id", "resolution", "at_ms"}; then {"done":
 * true, "sent", "failed"}. The client's defaults are kept: sslEnabled false (plaintext); --tls sets sslEnabled: true,
 * and the client then verifies the server certificate against gRPC's default roots; --ca-file makes those roots the
 * given PEM (grpc-js' GRPC_DEFAULT_SSL_ROOTS_FILE_PATH). --client-home sets HOME (the client's default log file is
 * under it; the driver hands the client a stderr logger instead). The transaction checker answers from the
 * user property pmqCheck (COMMIT, ROLLBACK, else UNKNOWN: no answer).
 */

const util = require('node:util');
// Required in main(), after --ca-file / --client-home are in process.env (grpc-js reads its roots path at load).
let Producer;
let TransactionResolution;

const CHECK_PROPERTY = 'pmqCheck';

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function errorText(err) {
  if (!err) return String(err);
  let text = `${err.name || 'Error'}: ${err.message}`;
  if (err.cause) text += ` (cause: ${errorText(err.cause)})`;
  return text;
}

/** The client's ILogger, on stderr (which the test harness keeps in the test's tmp dir). */
function stderrLogger() {
  const log = level => (...args) => {
    process.stderr.write(`${new Date().toISOString()} ${level} ${util.format(...args)}\n`);
  };
  return { info: log('INFO'), warn: log('WARN'), error: log('ERROR'), debug: log('DEBUG'), close() {} };
}

function parse(argv) {
  if (argv[0] !== 'produce') throw new Error('usage: produce --endpoints HOST:PORT --topic T ...');
  const a = { kind: 'normal', end: 'commit', linger: 0, ssl: undefined, requestTimeoutMs: undefined };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    switch (arg) {
      case '--endpoints': a.endpoints = argv[++i]; break;
      case '--topic': a.topic = argv[++i]; break;
      case '--kind': a.kind = argv[++i]; break;
      case '--commit': a.end = 'commit'; break;
      case '--rollback': a.end = 'rollback'; break;
      case '--no-end': a.end = 'none'; break;
      case '--linger': a.linger = Number(argv[++i]); break;
      case '--plaintext': a.ssl = false; break;
      case '--tls': a.ssl = true; break;
      case '--request-timeout-ms': a.requestTimeoutMs = Number(argv[++i]); break;
      case '--ca-file': a.caFile = argv[++i]; break;
      case '--client-home': a.clientHome = argv[++i]; break;
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  if (!a.endpoints || !a.topic) throw new Error('--endpoints and --topic are required');
  return a;
}

async function readSpecs() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8').split('\n').filter(l => l.trim()).map(l => JSON.parse(l));
}

function kindMismatch(kind, spec) {
  const group = spec.message_group != null;
  const delay = spec.delivery_timestamp_ms != null || spec.delivery_delay_ms != null;
  const wantGroup = kind === 'fifo';
  const wantDelay = kind === 'delay';
  if (group !== wantGroup || delay !== wantDelay) {
    return `a ${kind} message needs message_group=${wantGroup}, delivery time=${wantDelay}`;
  }
  return null;
}

/** The client's MessageOptions of one input line, and the delivery instant (ms) requested, if any. */
function message(topic, spec) {
  const options = { topic, body: Buffer.from(spec.body_b64, 'base64') };
  if (spec.tag != null) options.tag = spec.tag;
  if (Array.isArray(spec.keys) && spec.keys.length) options.keys = spec.keys.map(String);
  if (spec.properties && Object.keys(spec.properties).length) {
    options.properties = new Map(Object.entries(spec.properties).map(([ k, v ]) => [ k, String(v) ]));
  }
  if (spec.message_group != null) options.messageGroup = spec.message_group;
  let due = null;
  if (spec.delivery_timestamp_ms != null) due = Number(spec.delivery_timestamp_ms);
  else if (spec.delivery_delay_ms != null) due = Date.now() + Number(spec.delivery_delay_ms);
  if (due !== null) options.deliveryTimestamp = new Date(due);
  return { options, due };
}

function receipt(index, r, sentAt, due) {
  const line = { ok: true, index, message_id: r.messageId, sent_at_ms: sentAt };
  const mq = r.messageQueue;
  if (mq) {
    line.queue = `${mq.topic && mq.topic.name}@${mq.broker && mq.broker.name}#${mq.queueId}`;
    line.queue_id = mq.queueId;
  }
  line.offset = Number(r.offset);
  if (r.transactionId) line.transaction_id = r.transactionId;
  if (r.recallHandle) line.recall_handle = r.recallHandle;
  if (due !== null) line.delivery_timestamp_ms = due;
  return line;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([ promise, timeout ]);
  } finally {
    clearTimeout(timer);
  }
}

async function produce(args) {
  const specs = await readSpecs();
  const answered = new Set();
  const options = { endpoints: args.endpoints, topics: [ args.topic ], logger: stderrLogger() };
  if (args.ssl !== undefined) options.sslEnabled = args.ssl;
  if (args.requestTimeoutMs !== undefined) options.requestTimeout = args.requestTimeoutMs;
  if (args.kind === 'transaction') {
    options.checker = {
      async check(view) {
        const answer = String(view.properties.get(CHECK_PROPERTY) || '').toUpperCase();
        const resolution = answer === 'COMMIT' ? TransactionResolution.COMMIT
          : answer === 'ROLLBACK' ? TransactionResolution.ROLLBACK : null;
        emit({ check: true, message_id: view.messageId, at_ms: Date.now(),
          resolution: resolution === null ? 'UNKNOWN' : answer });
        if (resolution !== null) answered.add(view.messageId);
        return resolution;
      },
    };
  }
  let producer;
  try {
    producer = new Producer(options);
    await producer.startup();
  } catch (err) {
    specs.forEach((_, index) => emit({ ok: false, index, stage: 'startup', error: errorText(err) }));
    emit({ done: true, sent: 0, failed: specs.length });
    if (producer) await withTimeout(producer.shutdown(), 15000, 'shutdown').catch(() => {});
    return 0;
  }
  let sent = 0;
  let failed = 0;
  const leftOpen = new Set();
  for (let index = 0; index < specs.length; index++) {
    const spec = specs[index];
    try {
      const problem = kindMismatch(args.kind === 'transaction' ? 'normal' : args.kind, spec);
      if (problem) throw new TypeError(problem);
      const { options: msg, due } = message(args.topic, spec);
      const sentAt = Date.now();
      let result;
      if (args.kind !== 'transaction') {
        result = receipt(index, await producer.send(msg), sentAt, due);
      } else {
        const tx = producer.beginTransaction();
        result = receipt(index, await producer.send(msg, tx), sentAt, due);
        const end = spec.end != null ? spec.end : args.end;
        if (end === 'commit') await tx.commit();
        else if (end === 'rollback') await tx.rollback();
        else leftOpen.add(result.message_id);
        result.end = end;
      }
      emit(result);
      sent++;
    } catch (err) {
      emit({ ok: false, index, error: errorText(err) });
      failed++;
    }
  }
  await linger(args.linger, leftOpen, answered);
  try {
    await withTimeout(producer.shutdown(), 15000, 'shutdown');
  } catch (err) {
    process.stderr.write(`driver: shutdown failed: ${errorText(err)}\n`);
  }
  emit({ done: true, sent, failed });
  return 0;
}

/** Stay up `seconds` at most; with open transactions only until the checker answered each of them. */
async function linger(seconds, leftOpen, answered) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (leftOpen.size && [ ...leftOpen ].every(id => answered.has(id))) {
      await sleep(Math.max(0, Math.min(1000, deadline - Date.now()))); // time for the client's EndTransaction
      return;
    }
    await sleep(100);
  }
}

async function main() {
  const args = parse(process.argv.slice(2));
  delete process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH;
  if (args.caFile) process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH = args.caFile;
  if (args.clientHome) process.env.HOME = args.clientHome;
  ({ Producer } = require('rocketmq-client-nodejs'));
  ({ TransactionResolution } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb'));
  const code = await produce(args);
  // The client's timers and channels need not all be unref'd: leave once stdout is flushed.
  process.stdout.write('', () => process.exit(code));
}

main().catch(err => {
  process.stderr.write(`driver: ${err && err.stack || err}\n`);
  process.exit(2);
});
