'use strict';
/**
 * Scenario driver for the official RocketMQ 5.x Node.js client (npm rocketmq-client-nodejs, gRPC). A JSON-lines CLI:
 * stdout carries only JSON lines; the client's log goes to stderr (never to ~/logs/rocketmq, its default file).
 *
 *   produce        --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction]
 *                  [--commit|--rollback|--no-end] [--linger S]
 *   simple-consume --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
 *                  [--invisible-s 15] [--await-s 5] [--batch 16] [--linger S] [--no-ack]
 *   push-consume   --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
 *                  [--fail-first | --fail-always] [--threads 4] [--linger S]
 *   every command: [--plaintext|--tls] [--request-timeout-ms MS] [--ca-file PEM] [--client-home DIR]
 *
 * produce: one JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...},
 * "message_group", "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end":
 * "commit"|"rollback"|"none", "recall": true}. Prints per message, in input order, {"ok": true, "index",
 * "message_id", "sent_at_ms", "queue", "queue_id", "offset", ["transaction_id"], "recall_handle" (null: none),
 * ["delivery_timestamp_ms"], ["end"]} or {"ok": false, "index", ["stage": "startup"], "error"}; per transaction
 * check {"check": true, "message_id", "resolution", "at_ms"}; then {"done": true, "sent", "failed"}. The transaction
 * checker answers from the user property pmqCheck (COMMIT, ROLLBACK, else UNKNOWN: no answer). "recall": true
 * recalls the message once its send succeeded (Producer#recallMessage with the topic and the receipt's recall
 * handle); its send line then also carries "recalled": true and "recalled_message_id", or "recalled": false and
 * "recall_error".
 *
 * simple-consume / push-consume (SimpleConsumer receive + ack / PushConsumer with a messageListener), as the
 * commands of compat_tests/python5/driver.py: {"ready": true, "at_ms"} once the client started, then one line per
 * delivery {"message_id", "topic", "body_b64", "tag", "keys" (sorted), "properties" (the client's user
 * properties), "message_group", "delivery_attempt", "delivery_timestamp_ms" (null: none), "born_host",
 * "born_timestamp_ms", "store_timestamp_ms" (always null: the client does not expose it), "message_type",
 * "corrupted", "received_at_ms", and "acked" (simple; "ack_error" when the ack failed) or "result": SUCCESS|FAILURE
 * (push)}; {"ok": false, "stage": "startup"|"receive", "error"} on errors (a failed receive is retried after 1 s);
 * stop at N deliveries (plus --linger seconds), at the timeout or on SIGTERM; then {"done": true, "received": n,
 * "errors": e} (push: "received" counts SUCCESS answers, "deliveries" all of them). The client's MessageView has no
 * message type: "message_type" is derived from what it has (a message group: FIFO, a delivery timestamp: DELAY, else
 * NORMAL), so a TRANSACTION message shows as NORMAL. --fail-first answers FAILURE to each message's first delivery,
 * --fail-always to every delivery (N then counts deliveries, not SUCCESS answers).
 * The client's PushConsumer has no consumption thread count (one event loop): --threads is accepted and ignored.
 *
 * The client's defaults are kept: sslEnabled false (plaintext); --tls sets sslEnabled: true, and the client then
 * verifies the server certificate against gRPC's default roots; --ca-file makes those roots the given PEM (grpc-js'
 * GRPC_DEFAULT_SSL_ROOTS_FILE_PATH). --client-home sets HOME (the client's default log file is under it; the driver
 * hands the client a stderr logger instead).
 */

const util = require('node:util');
// Required in main(), after --ca-file / --client-home are in process.env (grpc-js reads its roots path at load).
let Producer;
let SimpleConsumer;
let PushConsumer;
let ConsumeResult;
let FilterExpression;
let FilterType;
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

const COMMANDS = [ 'produce', 'simple-consume', 'push-consume' ];
// Options of one command only: any other command refuses them.
const ONLY_FOR = {
  '--kind': [ 'produce' ], '--commit': [ 'produce' ], '--rollback': [ 'produce' ], '--no-end': [ 'produce' ],
  '--group': [ 'simple-consume', 'push-consume' ], '--tag-expression': [ 'simple-consume', 'push-consume' ],
  '--sql': [ 'simple-consume', 'push-consume' ], '--expect': [ 'simple-consume', 'push-consume' ],
  '--timeout': [ 'simple-consume', 'push-consume' ], '--invisible-s': [ 'simple-consume' ],
  '--await-s': [ 'simple-consume' ], '--batch': [ 'simple-consume' ], '--no-ack': [ 'simple-consume' ],
  '--fail-first': [ 'push-consume' ], '--fail-always': [ 'push-consume' ], '--threads': [ 'push-consume' ],
};

function parse(argv) {
  if (!COMMANDS.includes(argv[0])) {
    throw new Error('usage: produce|simple-consume|push-consume --endpoints HOST:PORT --topic T ...');
  }
  const a = { command: argv[0], kind: 'normal', end: 'commit', linger: 0, ssl: undefined, requestTimeoutMs: undefined,
    tagExpression: undefined, sql: undefined, invisibleS: 15, awaitS: 5, batch: 16, noAck: false, failFirst: false,
    failAlways: false, threads: 4 };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    if (ONLY_FOR[arg] && !ONLY_FOR[arg].includes(a.command)) throw new Error(`${arg} does not apply to ${a.command}`);
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
      case '--group': a.group = argv[++i]; break;
      case '--tag-expression': a.tagExpression = argv[++i]; break;
      case '--sql': a.sql = argv[++i]; break;
      case '--expect': a.expect = Number(argv[++i]); break;
      case '--timeout': a.timeout = Number(argv[++i]); break;
      case '--invisible-s': a.invisibleS = Number(argv[++i]); break;
      case '--await-s': a.awaitS = Number(argv[++i]); break;
      case '--batch': a.batch = Number(argv[++i]); break;
      case '--no-ack': a.noAck = true; break;
      case '--fail-first': a.failFirst = true; break;
      case '--fail-always': a.failAlways = true; break;
      case '--threads': a.threads = Number(argv[++i]); break;
      default: throw new Error(`unknown argument ${arg}`);
    }
  }
  if (!a.endpoints || !a.topic) throw new Error('--endpoints and --topic are required');
  if (a.command !== 'produce' && (!a.group || a.expect === undefined || a.timeout === undefined)) {
    throw new Error('--group, --expect and --timeout are required');
  }
  if (a.tagExpression !== undefined && a.sql !== undefined) {
    throw new Error('--tag-expression and --sql exclude each other');
  }
  if (a.failFirst && a.failAlways) {
    throw new Error('--fail-first and --fail-always exclude each other');
  }
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
  line.recall_handle = r.recallHandle || null;
  if (due !== null) line.delivery_timestamp_ms = due;
  return line;
}

/** Producer#recallMessage(topic, the receipt's recall handle); its outcome goes into the send line. */
async function recall(producer, topic, result) {
  try {
    const r = await producer.recallMessage(topic, result.recall_handle);
    result.recalled = true;
    result.recalled_message_id = r.messageId;
  } catch (err) {
    result.recalled = false;
    result.recall_error = errorText(err);
  }
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

/** The client options every command shares. */
function baseOptions(args) {
  const options = { endpoints: args.endpoints, logger: stderrLogger() };
  if (args.ssl !== undefined) options.sslEnabled = args.ssl;
  if (args.requestTimeoutMs !== undefined) options.requestTimeout = args.requestTimeoutMs;
  return options;
}

async function produce(args) {
  const specs = await readSpecs();
  const answered = new Set();
  const options = { ...baseOptions(args), topics: [ args.topic ] };
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
      if (spec.recall === true) await recall(producer, args.topic, result);
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

// ------------------------------------------------------------------------------------------------ consumers

/** A flag SIGTERM sets: the consumer loop stops, shuts the client down and prints its done line. */
function stopOnSigterm() {
  const stop = { requested: false, wake: null };
  process.on('SIGTERM', () => {
    stop.requested = true;
    if (stop.wake) stop.wake();
  });
  return stop;
}

/** Sleep up to `ms`, less when SIGTERM comes. */
function sleepOrStop(ms, stop) {
  if (stop.requested) return Promise.resolve();
  return new Promise(resolve => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      stop.wake = null;
      resolve();
    }
    stop.wake = done;
  });
}

function filter(args) {
  if (args.sql !== undefined) return new FilterExpression(args.sql, FilterType.SQL);
  return new FilterExpression(args.tagExpression === undefined ? '*' : args.tagExpression, FilterType.TAG);
}

function ms(date) {
  return date ? date.getTime() : null;
}

/** One delivery line; the client's MessageView has no message type, so it is derived from its other fields. */
function delivery(view) {
  const group = view.messageGroup || null;
  const due = ms(view.deliveryTimestamp);
  return {
    message_id: view.messageId,
    topic: view.topic,
    body_b64: Buffer.from(view.body).toString('base64'),
    tag: view.tag === undefined || view.tag === '' ? null : view.tag,
    keys: [ ...view.keys ].sort(),
    properties: Object.fromEntries(view.properties),
    message_group: group,
    delivery_attempt: view.deliveryAttempt === undefined ? null : view.deliveryAttempt,
    delivery_timestamp_ms: due,
    born_host: view.bornHost === undefined ? null : view.bornHost,
    born_timestamp_ms: ms(view.bornTimestamp),
    store_timestamp_ms: null,
    message_type: group !== null ? 'FIFO' : due !== null ? 'DELAY' : 'NORMAL',
    corrupted: Boolean(view.corrupted),
    received_at_ms: Date.now(),
  };
}

async function stopClient(client) {
  try {
    await withTimeout(client.shutdown(), 15000, 'shutdown');
  } catch (err) {
    process.stderr.write(`driver: shutdown failed: ${errorText(err)}\n`);
  }
}

async function simpleConsume(args) {
  const stop = stopOnSigterm();
  let consumer;
  try {
    consumer = new SimpleConsumer({
      ...baseOptions(args), consumerGroup: args.group, awaitDuration: args.awaitS * 1000,
      subscriptions: new Map([ [ args.topic, filter(args) ] ]),
    });
    await consumer.startup();
  } catch (err) {
    emit({ ok: false, stage: 'startup', error: errorText(err) });
    emit({ done: true, received: 0, errors: 1 });
    if (consumer) await withTimeout(consumer.shutdown(), 15000, 'shutdown').catch(() => {});
    return 0;
  }
  emit({ ready: true, at_ms: Date.now() });
  const deadline = Date.now() + args.timeout * 1000;
  let lingerUntil = null;
  let received = 0;
  let errors = 0;
  while (!stop.requested) {
    const now = Date.now();
    if (now >= deadline || (lingerUntil !== null && now >= lingerUntil)) break;
    let messages;
    try {
      messages = await consumer.receive(args.batch, args.invisibleS * 1000);
    } catch (err) {
      if (stop.requested) break;
      errors++;
      emit({ ok: false, stage: 'receive', error: errorText(err), at_ms: Date.now() });
      await sleepOrStop(1000, stop);
      continue;
    }
    for (const view of messages) {
      const line = delivery(view);
      line.acked = false;
      if (!args.noAck) {
        try {
          await consumer.ack(view);
          line.acked = true;
        } catch (err) {
          line.ack_error = errorText(err);
        }
      }
      emit(line);
      received++;
    }
    if (received >= args.expect && lingerUntil === null) lingerUntil = Date.now() + args.linger * 1000;
  }
  await stopClient(consumer);
  emit({ done: true, received, errors });
  return 0;
}

async function pushConsume(args) {
  const stop = stopOnSigterm();
  const state = { ok: 0, deliveries: 0, failedOnce: new Set() };
  const counted = () => (args.failAlways ? state.deliveries : state.ok); // what --expect counts
  const listener = {
    consume(view) {
      const line = delivery(view);
      const fail = args.failAlways || (args.failFirst && !state.failedOnce.has(view.messageId));
      if (fail) state.failedOnce.add(view.messageId);
      else state.ok++;
      state.deliveries++;
      line.result = fail ? 'FAILURE' : 'SUCCESS';
      emit(line);
      if (counted() >= args.expect && stop.wake) stop.wake();
      return fail ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
    },
  };
  let consumer;
  try {
    consumer = new PushConsumer({
      ...baseOptions(args), consumerGroup: args.group, messageListener: listener,
      subscriptions: new Map([ [ args.topic, filter(args) ] ]),
    });
    await consumer.startup();
  } catch (err) {
    emit({ ok: false, stage: 'startup', error: errorText(err) });
    emit({ done: true, received: 0, deliveries: 0 });
    if (consumer) await withTimeout(consumer.shutdown(), 15000, 'shutdown').catch(() => {});
    return 0;
  }
  emit({ ready: true, at_ms: Date.now() });
  const deadline = Date.now() + args.timeout * 1000;
  while (!stop.requested && counted() < args.expect && Date.now() < deadline) {
    await sleepOrStop(Math.min(200, Math.max(0, deadline - Date.now())), stop);
  }
  if (!stop.requested && counted() >= args.expect && args.linger > 0) await sleepOrStop(args.linger * 1000, stop);
  await stopClient(consumer);
  emit({ done: true, received: state.ok, deliveries: state.deliveries });
  return 0;
}

async function main() {
  const args = parse(process.argv.slice(2));
  delete process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH;
  if (args.caFile) process.env.GRPC_DEFAULT_SSL_ROOTS_FILE_PATH = args.caFile;
  if (args.clientHome) process.env.HOME = args.clientHome;
  ({ Producer, SimpleConsumer, PushConsumer, ConsumeResult, FilterExpression } = require('rocketmq-client-nodejs'));
  ({ TransactionResolution, FilterType } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb'));
  const commands = { produce, 'simple-consume': simpleConsume, 'push-consume': pushConsume };
  const code = await commands[args.command](args);
  // The client's timers and channels need not all be unref'd: leave once stdout is flushed.
  process.stdout.write('', () => process.exit(code));
}

main().catch(err => {
  process.stderr.write(`driver: ${err && err.stack || err}\n`);
  process.exit(2);
});
