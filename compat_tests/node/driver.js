#!/usr/bin/env node
// Drives the stock Node.js RocketMQ client (ali-ons, version pinned in package.json) against pocketmq for
// compat_tests/test_node.py (see compat_tests/node_driver.py).
//
//   node driver.js produce --namesrv ADDR --topic T --group G --spec FILE [--concurrent]
//                          [--access-key K --secret-key S]
//   node driver.js consume --namesrv ADDR --topic T --group G --expr EXPR --expect N --timeout S
//                          [--expr-type SQL92] [--broadcast] [--fail-first | --fail-always] [--max-reconsume-times N]
//                          [--linger S] [--from first|last] [--access-key K --secret-key S]
//
// stdout: one JSON object per line ("event": ready | sent | send-error | message | done | fatal); the client's own
// warnings and errors go to stderr. The spec of `produce` is a JSON list of
//   {name, body (base64), tags, keys: [..], props: {..}, delayLevel?, startDeliverTime? (epoch ms),
//    startDeliverInMs? (ms after the send starts)}
// and every message also carries the user property pmqName = name, which `consume` uses to recognise redeliveries.
// `produce` awaits each send before the next one, or with --concurrent starts every send at once and then awaits
// them all (ali-ons' Producer#send returns a promise: many requests in flight on one connection).
// `consume` subscribes with a tag expression, or with --expr-type SQL92 with the SQL92 form of Consumer#subscribe
// ({expressionType, subString}); --fail-always throws on every delivery; --max-reconsume-times sets the client's
// maxReconsumeTimes option. SIGTERM makes it close the consumer (committing offsets, unregistering) and finish
// with "stopped": true.
'use strict';

const { Producer, Consumer, Message } = require('ali-ons');

const CLIENT_VERSION = require('ali-ons/package.json').version;
const NAME_PROP = 'pmqName';

function parseArgs(argv) {
  const flags = new Set(['broadcast', 'fail-first', 'fail-always', 'concurrent']);
  const opts = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      opts._.push(a);
      continue;
    }
    const key = a.slice(2);
    if (flags.has(key)) {
      opts[key] = true;
    } else {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`);
      opts[key] = argv[++i];
    }
  }
  return opts;
}

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function finish(obj, code) {
  // stdout is a pipe: exit only once the last line has been handed over.
  process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code));
}

function stderr(...args) {
  console.error(...args);
}

// The client logs through options.logger: info/debug dropped (PMQ_NODE_DEBUG=1 keeps them), the rest to stderr.
const verbose = !!process.env.PMQ_NODE_DEBUG;
const logger = {
  info: verbose ? stderr : () => {},
  debug: verbose ? stderr : () => {},
  warn: stderr,
  error: stderr,
};

// With `nameSrv` set the client never asks its Aliyun address server (onsAddr) for name servers, but its constructor
// still asserts an `httpclient`; this one refuses to be used.
const httpclient = {
  async request(url) {
    throw new Error(`pocketmq driver: unexpected HTTP lookup of ${url}`);
  },
};

function clientOptions(opts) {
  const options = {
    nameSrv: opts.namesrv.split(';'),
    httpclient,
    logger,
  };
  // Without a key pair the client signs nothing (Channel#beforeRequest); with one every request carries
  // AccessKey, OnsChannel and an HMAC-SHA1 Signature, which pocketmq ignores.
  if (opts['access-key']) {
    options.accessKeyId = opts['access-key'];
    options.accessKeySecret = opts['secret-key'] || '';
  }
  return options;
}

function required(opts, ...names) {
  for (const n of names) {
    if (opts[n] === undefined) throw new Error(`--${n} is required`);
  }
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise(resolve => setTimeout(resolve, ms))]);
}

async function produce(opts) {
  required(opts, 'namesrv', 'topic', 'group', 'spec');
  const spec = JSON.parse(require('fs').readFileSync(opts.spec, 'utf8'));
  const producer = new Producer(Object.assign(clientOptions(opts), { producerGroup: opts.group }));
  producer.on('error', err => stderr('[producer error]', err && err.stack || err));
  await producer.ready();
  emit({ event: 'ready', role: 'producer', clientVersion: CLIENT_VERSION });
  let failed = 0;
  const sendOne = async m => {
    const msg = new Message(opts.topic, m.tags, Buffer.from(m.body || '', 'base64'));
    if (m.tags === undefined || m.tags === null) delete msg.properties.TAGS; // else the client sends "null"
    if (m.keys && m.keys.length) msg.keys = m.keys;
    for (const [k, v] of Object.entries(m.props || {})) msg.properties[k] = String(v);
    msg.properties[NAME_PROP] = m.name;
    if (m.delayLevel) msg.delayTimeLevel = m.delayLevel;
    const sentAt = Date.now();
    let deliverAt = null;
    if (m.startDeliverTime !== undefined && m.startDeliverTime !== null) deliverAt = m.startDeliverTime;
    if (m.startDeliverInMs !== undefined && m.startDeliverInMs !== null) deliverAt = sentAt + m.startDeliverInMs;
    if (deliverAt !== null) msg.setStartDeliverTime(deliverAt);
    try {
      const r = await producer.send(msg);
      emit({
        event: 'sent', name: m.name, status: r.sendStatus, msgId: r.msgId, queueId: r.messageQueue.queueId,
        brokerName: r.messageQueue.brokerName, queueOffset: r.queueOffset, sentAt, sentDone: Date.now(), deliverAt,
      });
    } catch (err) {
      failed++;
      emit({ event: 'send-error', name: m.name, error: String(err && err.message || err), code: err && err.code });
    }
  };
  if (opts.concurrent) {
    await Promise.all(spec.map(sendOne));
  } else {
    for (const m of spec) await sendOne(m);
  }
  const closing = Date.now();
  const closed = await withTimeout(producer.close().then(() => true), 10000);
  finish({
    event: 'done', role: 'producer', sent: spec.length - failed, failed, closed: closed === true,
    closeMs: Date.now() - closing,
  }, 0);
}

function describe(msg, extra) {
  return Object.assign({
    event: 'message',
    name: msg.properties[NAME_PROP] || null,
    topic: msg.topic,
    body: msg.body ? msg.body.toString('base64') : '',
    tags: msg.tags === undefined ? null : msg.tags,
    keys: msg.keys === undefined ? null : msg.keys,
    props: Object.assign({}, msg.properties),
    msgId: msg.msgId,
    originMsgId: msg.originMessageId || null,
    queueId: msg.queueId,
    queueOffset: msg.queueOffset,
    reconsumeTimes: msg.reconsumeTimes,
    bornTimestamp: msg.bornTimestamp,
    storeTimestamp: msg.storeTimestamp,
    storeHost: msg.storeHost,
    sysFlag: msg.sysFlag,
    receivedAt: Date.now(),
  }, extra);
}

async function consume(opts) {
  required(opts, 'namesrv', 'topic', 'group', 'expect', 'timeout');
  const expect = Number(opts.expect);
  const timeoutMs = Number(opts.timeout) * 1000;
  const lingerMs = Number(opts.linger === undefined ? 1 : opts.linger) * 1000;
  const from = opts.from || 'first';
  const consumerOptions = {
    consumerGroup: opts.group,
    isBroadcast: !!opts.broadcast,
    consumeFromWhere: from === 'last' ? 'CONSUME_FROM_LAST_OFFSET' : 'CONSUME_FROM_FIRST_OFFSET',
  };
  if (opts['max-reconsume-times'] !== undefined) consumerOptions.maxReconsumeTimes = Number(opts['max-reconsume-times']);
  const consumer = new Consumer(Object.assign(clientOptions(opts), consumerOptions));
  consumer.on('error', err => stderr('[consumer error]', err && err.message || err));

  const seenFailures = new Set();
  let delivered = 0;
  let settled = false;
  let resolveDone;
  const done = new Promise(resolve => { resolveDone = resolve; });

  consumer.on(`topic_${opts.topic}_queue_changed`, () => {
    const queues = [];
    for (const v of consumer.processQueueTable.values()) {
      if (v.messageQueue.topic === opts.topic) queues.push(v.messageQueue.queueId);
    }
    emit({ event: 'ready', role: 'consumer', clientVersion: CLIENT_VERSION, queues: queues.sort((a, b) => a - b) });
  });

  let expression = opts.expr || '*';
  if (opts['expr-type']) expression = { expressionType: opts['expr-type'], subString: expression };
  consumer.subscribe(opts.topic, expression, async msg => {
    const key = msg.properties[NAME_PROP] || msg.originMessageId || msg.msgId;
    if (opts['fail-always']) {
      emit(describe(msg, { failed: true }));
      throw new Error(`pocketmq driver: failing every delivery of ${key} on purpose`);
    }
    if (opts['fail-first'] && !seenFailures.has(key)) {
      seenFailures.add(key);
      emit(describe(msg, { failed: true }));
      throw new Error(`pocketmq driver: failing the first delivery of ${key} on purpose`);
    }
    emit(describe(msg, { failed: false }));
    delivered++;
    if (delivered >= expect && !settled) {
      settled = true;
      setTimeout(() => resolveDone(false), lingerMs);
    }
  });

  let stopped = false;
  process.on('SIGTERM', () => {
    stopped = true;
    resolveDone(false);
  });
  const timer = setTimeout(() => resolveDone(true), timeoutMs);
  await consumer.ready();
  const timedOut = await done;
  clearTimeout(timer);
  await withTimeout(consumer.close(), 10000);
  finish({ event: 'done', role: 'consumer', delivered, timedOut, stopped }, 0);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const command = opts._[0];
  if (command === 'produce') return produce(opts);
  if (command === 'consume') return consume(opts);
  if (command === 'version') return finish({ event: 'done', clientVersion: CLIENT_VERSION }, 0);
  throw new Error(`unknown command ${command}; expected produce | consume | version`);
}

main().catch(err => {
  stderr(err && err.stack || err);
  finish({ event: 'fatal', error: String(err && err.message || err) }, 2);
});
