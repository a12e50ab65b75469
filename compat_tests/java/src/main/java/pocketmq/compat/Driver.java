package pocketmq.compat;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyContext;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.remoting.RPCHook;

/**
 * Scenario runner for the stock RocketMQ Java client (remoting), compiled unchanged against 4.9.8 and 5.3.3.
 *
 * <pre>
 * Driver produce --namesrv ADDR --topic T --group G --mode sync|async|oneway|batch --spec FILE
 *                [--retry-seconds S] [--batch-size K]
 * Driver consume --namesrv ADDR --topic T --group G --expr "a || b" --expect N --timeout S   (N distinct bodies)
 *                [--from first|last] [--heartbeat-ms MS] [--linger-ms MS]
 * Driver create-topic --namesrv ADDR --topic T --group G            (MQAdmin createTopic from TBW102, 4 queues)
 * Every command also takes [--access-key AK --secret-key SK]: ACL 1.0 credentials (AclClientRPCHook from
 * rocketmq-acl, loaded by reflection; only on the classpath of the 4.9.8 build).
 * </pre>
 *
 * stdout carries only JSON lines (one object per line); everything else, including anything the client libraries
 * print, goes to stderr. The spec FILE is a JSON list of {"body": base64, "tags": str, "keys": [str], "props": {}},
 * each optionally with "delayLevel" (Message.setDelayTimeLevel), "deliverTimeMs" (absolute, Message.setDeliverTimeMs)
 * or "deliverAfterMs" (setDeliverTimeMs(now + this), "now" taken right before that message is sent). setDeliverTimeMs
 * exists only in 5.x clients and is called by reflection; on 4.x the producer prints {"event": "unsupported"} and
 * exits with status 3 before sending anything. Result lines carry "sentAt"/"sentDone" (ms around the send call).
 */
public final class Driver {
    private static PrintStream out;

    private Driver() {
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        if (args.length < 1) {
            usage("missing command");
        }
        Map<String, String> opts = parseOptions(args);
        configureLogging(opts);
        String command = args[0];
        int rc;
        if ("produce".equals(command)) {
            rc = produce(opts);
        } else if ("consume".equals(command)) {
            rc = consume(opts);
        } else if ("create-topic".equals(command)) {
            rc = createTopic(opts);
        } else {
            usage("unknown command " + command);
            rc = 2;
        }
        out.flush();
        System.exit(rc);
    }

    // ------------------------------------------------------------------ options, logging

    private static void usage(String why) {
        System.err.println("usage error: " + why);
        System.err.println("Driver produce|consume --namesrv ADDR --topic T --group G ...");
        System.exit(2);
    }

    private static Map<String, String> parseOptions(String[] args) {
        Map<String, String> opts = new HashMap<>();
        for (int i = 1; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                usage("bad option " + args[i]);
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        return opts;
    }

    private static String req(Map<String, String> opts, String name) {
        String v = opts.get(name);
        if (v == null) {
            usage("missing --" + name);
        }
        return v;
    }

    private static void configureLogging(Map<String, String> opts) {
        String dir = opts.containsKey("log-dir") ? opts.get("log-dir")
            : Paths.get(System.getProperty("java.io.tmpdir"), "pocketmq-java-client-logs").toString();
        String level = opts.containsKey("log-level") ? opts.get("log-level") : "WARN";
        // 4.x: the client's own InternalLogger writing a file under logRoot.
        setDefault("rocketmq.client.logUseSlf4j", "false");
        setDefault("rocketmq.client.logRoot", dir);
        setDefault("rocketmq.client.logLevel", level);
        setDefault("rocketmq.client.logFileMaxIndex", "2");
        // 5.x: shaded logback configured by rmq.client.logback.xml.
        setDefault("rocketmq.log.root", dir);
        setDefault("rocketmq.log.level", level);
        setDefault("mq.consoleAppender.enabled", "false");
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    private static String instanceName(String role) {
        return "pmq-" + role + "-" + ManagementFactory.getRuntimeMXBean().getName().replace('@', '-') + "-"
            + System.nanoTime();
    }

    // ------------------------------------------------------------------ produce

    /** Per-message delivery timing from the spec, applied right before the message is sent (see {@link #prepare}). */
    private static final class Timing {
        Integer delayLevel;
        Long deliverTimeMs;
        Long deliverAfterMs;
    }

    private static final List<Timing> TIMINGS = new ArrayList<>();

    /** Message.setDeliverTimeMs(long), present from client 5.0 on; null on 4.x. */
    private static Method deliverTimeSetter() {
        try {
            return Message.class.getMethod("setDeliverTimeMs", long.class);
        } catch (NoSuchMethodException e) {
            return null;
        }
    }

    private static Long longOrNull(Object o) {
        return o == null ? null : ((Number) o).longValue();
    }

    private static List<Message> loadSpec(String topic, String file) throws Exception {
        String text = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
        Object parsed = new Json(text).parseTop();
        if (!(parsed instanceof List)) {
            throw new IllegalArgumentException("spec must be a JSON list");
        }
        List<Message> msgs = new ArrayList<>();
        for (Object o : (List<?>) parsed) {
            Map<?, ?> m = (Map<?, ?>) o;
            byte[] body = Base64.getDecoder().decode((String) m.get("body"));
            Message msg = new Message(topic, body);
            Object tags = m.get("tags");
            if (tags != null) {
                msg.setTags((String) tags);
            }
            Object keys = m.get("keys");
            if (keys instanceof List && !((List<?>) keys).isEmpty()) {
                List<String> ks = new ArrayList<>();
                for (Object k : (List<?>) keys) {
                    ks.add((String) k);
                }
                msg.setKeys(ks);
            }
            Object props = m.get("props");
            if (props instanceof Map) {
                for (Map.Entry<?, ?> e : ((Map<?, ?>) props).entrySet()) {
                    msg.putUserProperty((String) e.getKey(), (String) e.getValue());
                }
            }
            Timing timing = new Timing();
            Long level = longOrNull(m.get("delayLevel"));
            timing.delayLevel = level == null ? null : level.intValue();
            timing.deliverTimeMs = longOrNull(m.get("deliverTimeMs"));
            timing.deliverAfterMs = longOrNull(m.get("deliverAfterMs"));
            TIMINGS.add(timing);
            msgs.add(msg);
        }
        return msgs;
    }

    /** Apply message {@code index}'s delay level / delivery time; returns the absolute delivery time set, or null. */
    private static Long prepare(List<Message> msgs, int index) throws Exception {
        Message msg = msgs.get(index);
        Timing t = TIMINGS.get(index);
        if (t.delayLevel != null) {
            msg.setDelayTimeLevel(t.delayLevel);
        }
        Long at = t.deliverTimeMs;
        if (t.deliverAfterMs != null) {
            at = System.currentTimeMillis() + t.deliverAfterMs;
        }
        if (at != null) {
            deliverTimeSetter().invoke(msg, at);
        }
        return at;
    }

    private static Map<String, Object> timed(Map<String, Object> line, long sentAt, Long deliverTimeMs) {
        line.put("sentAt", sentAt);
        line.put("sentDone", System.currentTimeMillis());
        if (deliverTimeMs != null) {
            line.put("deliverTimeMs", deliverTimeMs);
        }
        return line;
    }

    private static Map<String, Object> resultLine(int index, SendResult r) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("index", index);
        line.put("status", String.valueOf(r.getSendStatus()));
        line.put("msgId", r.getMsgId());
        line.put("offsetMsgId", r.getOffsetMsgId());
        line.put("brokerName", r.getMessageQueue() == null ? null : r.getMessageQueue().getBrokerName());
        line.put("queueId", r.getMessageQueue() == null ? null : r.getMessageQueue().getQueueId());
        line.put("queueOffset", r.getQueueOffset());
        line.put("regionId", r.getRegionId());
        return line;
    }

    private static Map<String, Object> errorLine(int index, Throwable t) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("index", index);
        line.put("error", describe(t));
        return line;
    }

    private static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (sb.length() > 0) {
                sb.append(" <- caused by ");
            }
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
            if (c.getCause() == c) {
                break;
            }
        }
        return sb.toString();
    }

    private static int produce(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        String mode = req(opts, "mode");
        List<Message> msgs = loadSpec(topic, req(opts, "spec"));
        long retryMillis = (long) (Double.parseDouble(opts.getOrDefault("retry-seconds", "0")) * 1000);
        for (Timing t : TIMINGS) {
            if ((t.deliverTimeMs != null || t.deliverAfterMs != null) && deliverTimeSetter() == null) {
                Map<String, Object> line = event("unsupported");
                line.put("feature", "Message.setDeliverTimeMs");
                line.put("reason", "this client version has no Message.setDeliverTimeMs");
                emit(line);
                return 3;
            }
        }

        DefaultMQProducer producer = newProducer(opts);
        producer.start();
        emit(event("started"));
        int failed = 0;
        try {
            switch (mode) {
                case "sync":
                    for (int i = 0; i < msgs.size(); i++) {
                        long deadline = System.currentTimeMillis() + retryMillis;
                        while (true) {
                            try {
                                long sentAt = System.currentTimeMillis();
                                Long at = prepare(msgs, i);
                                emit(timed(resultLine(i, producer.send(msgs.get(i))), sentAt, at));
                                break;
                            } catch (Exception e) {
                                if (System.currentTimeMillis() >= deadline) {
                                    emit(errorLine(i, e));
                                    failed++;
                                    break;
                                }
                                System.err.println("send " + i + " failed, retrying: " + describe(e));
                                Thread.sleep(500);
                            }
                        }
                    }
                    break;
                case "async":
                    failed = produceAsync(producer, msgs);
                    break;
                case "oneway":
                    for (int i = 0; i < msgs.size(); i++) {
                        try {
                            long sentAt = System.currentTimeMillis();
                            Long at = prepare(msgs, i);
                            producer.sendOneway(msgs.get(i));
                            Map<String, Object> line = new LinkedHashMap<>();
                            line.put("index", i);
                            line.put("status", "ok");
                            line.put("msgId", msgs.get(i).getProperty(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX));
                            emit(timed(line, sentAt, at));
                        } catch (Exception e) {
                            emit(errorLine(i, e));
                            failed++;
                        }
                    }
                    break;
                case "batch":
                    failed = produceBatch(producer, msgs, Integer.parseInt(opts.getOrDefault("batch-size", "0")));
                    break;
                default:
                    usage("unknown mode " + mode);
            }
        } finally {
            Map<String, Object> done = event("done");
            done.put("failed", failed);
            emit(done);
            producer.shutdown();
        }
        return failed == 0 ? 0 : 1;
    }

    private static DefaultMQProducer newProducer(Map<String, String> opts) throws Exception {
        RPCHook hook = aclHook(opts);
        DefaultMQProducer producer = hook == null ? new DefaultMQProducer(req(opts, "group"))
            : new DefaultMQProducer(req(opts, "group"), hook);
        producer.setNamesrvAddr(req(opts, "namesrv"));
        producer.setInstanceName(instanceName("producer"));
        producer.setVipChannelEnabled(false);
        return producer;
    }

    /** AclClientRPCHook(new SessionCredentials(ak, sk)) when --access-key is given, else null. */
    private static RPCHook aclHook(Map<String, String> opts) throws Exception {
        if (!opts.containsKey("access-key")) {
            return null;
        }
        Class<?> credentials = Class.forName("org.apache.rocketmq.acl.common.SessionCredentials");
        Object creds = credentials.getConstructor(String.class, String.class)
            .newInstance(opts.get("access-key"), req(opts, "secret-key"));
        Class<?> hook = Class.forName("org.apache.rocketmq.acl.common.AclClientRPCHook");
        return (RPCHook) hook.getConstructor(credentials).newInstance(creds);
    }

    private static int createTopic(Map<String, String> opts) throws Exception {
        DefaultMQProducer producer = newProducer(opts);
        producer.start();
        try {
            // 4.x: createTopic(key, topic, queues); 5.x: createTopic(key, topic, queues, attributes).
            try {
                producer.getClass().getMethod("createTopic", String.class, String.class, int.class)
                    .invoke(producer, "TBW102", req(opts, "topic"), 4);
            } catch (NoSuchMethodException e) {
                producer.getClass().getMethod("createTopic", String.class, String.class, int.class, Map.class)
                    .invoke(producer, "TBW102", req(opts, "topic"), 4, new HashMap<String, String>());
            }
            emit(event("created"));
            return 0;
        } catch (Exception e) {
            Map<String, Object> line = event("error");
            line.put("error", describe(e instanceof java.lang.reflect.InvocationTargetException ? e.getCause() : e));
            emit(line);
            return 1;
        } finally {
            producer.shutdown();
        }
    }

    private static int produceAsync(DefaultMQProducer producer, List<Message> msgs) throws Exception {
        final int n = msgs.size();
        final Object[] results = new Object[n];
        final long[] sentAt = new long[n];
        final long[] sentDone = new long[n];
        final Long[] deliverAt = new Long[n];
        final CountDownLatch latch = new CountDownLatch(n);
        for (int i = 0; i < n; i++) {
            final int index = i;
            try {
                sentAt[i] = System.currentTimeMillis();
                deliverAt[i] = prepare(msgs, i);
                producer.send(msgs.get(i), new SendCallback() {
                    @Override
                    public void onSuccess(SendResult sendResult) {
                        sentDone[index] = System.currentTimeMillis();
                        results[index] = sendResult;
                        latch.countDown();
                    }

                    @Override
                    public void onException(Throwable e) {
                        results[index] = e;
                        latch.countDown();
                    }
                });
            } catch (Exception e) {
                results[index] = e;
                latch.countDown();
            }
        }
        boolean all = latch.await(60, TimeUnit.SECONDS);
        int failed = 0;
        for (int i = 0; i < n; i++) {
            Object r = results[i];
            if (r instanceof SendResult) {
                Map<String, Object> line = resultLine(i, (SendResult) r);
                line.put("sentAt", sentAt[i]);
                line.put("sentDone", sentDone[i]);
                if (deliverAt[i] != null) {
                    line.put("deliverTimeMs", deliverAt[i]);
                }
                emit(line);
            } else {
                failed++;
                emit(errorLine(i, r == null ? new IllegalStateException("no callback within 60 s (all=" + all + ")")
                    : (Throwable) r));
            }
        }
        return failed;
    }

    private static int produceBatch(DefaultMQProducer producer, List<Message> msgs, int batchSize) {
        int size = batchSize <= 0 ? msgs.size() : batchSize;
        int failed = 0;
        for (int start = 0; start < msgs.size(); start += size) {
            List<Message> chunk = msgs.subList(start, Math.min(msgs.size(), start + size));
            try {
                for (int j = start; j < start + chunk.size(); j++) {
                    prepare(msgs, j);
                }
                SendResult r = producer.send(chunk);
                String[] ids = r.getMsgId() == null ? new String[0] : r.getMsgId().split(",");
                String[] offIds = r.getOffsetMsgId() == null ? new String[0] : r.getOffsetMsgId().split(",");
                for (int j = 0; j < chunk.size(); j++) {
                    Map<String, Object> line = resultLine(start + j, r);
                    line.put("msgId", j < ids.length ? ids[j] : null);
                    line.put("offsetMsgId", j < offIds.length ? offIds[j] : null);
                    line.put("queueOffset", r.getQueueOffset() + j);
                    line.put("batchQueueOffset", r.getQueueOffset());
                    line.put("batchMsgId", r.getMsgId());
                    line.put("batchOffsetMsgId", r.getOffsetMsgId());
                    emit(line);
                }
            } catch (Exception e) {
                for (int j = 0; j < chunk.size(); j++) {
                    emit(errorLine(start + j, e));
                    failed++;
                }
            }
        }
        return failed;
    }

    // ------------------------------------------------------------------ consume

    private static int consume(Map<String, String> opts) throws Exception {
        final int expect = Integer.parseInt(req(opts, "expect"));
        double timeout = Double.parseDouble(req(opts, "timeout"));
        long lingerMs = Long.parseLong(opts.getOrDefault("linger-ms", "0"));
        String from = opts.getOrDefault("from", "first");

        final Set<String> distinct = Collections.synchronizedSet(new HashSet<String>());
        final AtomicInteger received = new AtomicInteger();
        final CountDownLatch enough = new CountDownLatch(1);

        RPCHook hook = aclHook(opts);
        DefaultMQPushConsumer consumer = hook == null ? new DefaultMQPushConsumer(req(opts, "group"))
            : new DefaultMQPushConsumer(req(opts, "group"), hook, new AllocateMessageQueueAveragely());
        consumer.setNamesrvAddr(req(opts, "namesrv"));
        consumer.setInstanceName(instanceName("consumer"));
        consumer.setVipChannelEnabled(false);
        // The default message model is CLUSTERING (its enum moved packages between 4.x and 5.x).
        consumer.setConsumeFromWhere("last".equals(from) ? ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
            : ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        if (opts.containsKey("heartbeat-ms")) {
            consumer.setHeartbeatBrokerInterval(Integer.parseInt(opts.get("heartbeat-ms")));
        }
        consumer.subscribe(req(opts, "topic"), opts.getOrDefault("expr", "*"));
        consumer.registerMessageListener(new MessageListenerConcurrently() {
            @Override
            public ConsumeConcurrentlyStatus consumeMessage(List<MessageExt> msgs, ConsumeConcurrentlyContext ctx) {
                long receivedAt = System.currentTimeMillis();
                for (MessageExt m : msgs) {
                    Map<String, Object> line = messageLine(m);
                    line.put("receivedAt", receivedAt);
                    emit(line);
                    received.incrementAndGet();
                    // Distinct by body, not msgId: test bodies are unique, while an Apache 5.x broker gives every
                    // item of a 5.x client's batch the batch-level UNIQ_KEY (so their msgIds coincide).
                    distinct.add(sha256(m.getBody()));
                    if (distinct.size() >= expect) {
                        enough.countDown();
                    }
                }
                return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
            }
        });
        consumer.start();
        Map<String, Object> ready = event("ready");
        ready.put("messageModel", String.valueOf(consumer.getMessageModel()));
        emit(ready);
        boolean complete = expect <= 0 || enough.await((long) (timeout * 1000), TimeUnit.MILLISECONDS);
        if (complete && lingerMs > 0) {
            Thread.sleep(lingerMs);
        }
        Map<String, Object> done = event("done");
        done.put("complete", complete);
        done.put("distinct", distinct.size());
        done.put("received", received.get());
        emit(done);
        consumer.shutdown();
        return 0;
    }

    private static String sha256(byte[] data) {
        try {
            byte[] d = MessageDigest.getInstance("SHA-256").digest(data == null ? new byte[0] : data);
            StringBuilder sb = new StringBuilder();
            for (byte b : d) {
                sb.append(String.format("%02x", b & 0xff));
            }
            return sb.toString();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Map<String, Object> messageLine(MessageExt m) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("topic", m.getTopic());
        line.put("tags", m.getTags());
        List<String> keys = new ArrayList<>();
        if (m.getKeys() != null) {
            for (String k : m.getKeys().split(MessageConst.KEY_SEPARATOR)) {
                if (!k.isEmpty()) {
                    keys.add(k);
                }
            }
        }
        line.put("keys", keys);
        line.put("body", m.getBody() == null ? null : Base64.getEncoder().encodeToString(m.getBody()));
        Map<String, Object> user = new TreeMap<>();
        Map<String, Object> all = new TreeMap<>();
        if (m.getProperties() != null) {
            for (Map.Entry<String, String> e : m.getProperties().entrySet()) {
                all.put(e.getKey(), e.getValue());
                if (!MessageConst.STRING_HASH_SET.contains(e.getKey())) {
                    user.put(e.getKey(), e.getValue());
                }
            }
        }
        line.put("props", user);
        line.put("allProps", all);
        line.put("msgId", m.getMsgId());
        line.put("offsetMsgId", m instanceof MessageClientExt ? ((MessageClientExt) m).getOffsetMsgId() : null);
        line.put("queueId", m.getQueueId());
        line.put("queueOffset", m.getQueueOffset());
        line.put("commitLogOffset", m.getCommitLogOffset());
        line.put("reconsumeTimes", m.getReconsumeTimes());
        line.put("storeHost", host(m.getStoreHost()));
        line.put("bornHost", host(m.getBornHost()));
        line.put("bornTimestamp", m.getBornTimestamp());
        line.put("storeTimestamp", m.getStoreTimestamp());
        line.put("sysFlag", m.getSysFlag());
        line.put("flag", m.getFlag());
        return line;
    }

    private static String host(SocketAddress a) {
        if (a instanceof InetSocketAddress) {
            InetSocketAddress i = (InetSocketAddress) a;
            String h = i.getAddress() != null ? i.getAddress().getHostAddress() : i.getHostString();
            return h + ":" + i.getPort();
        }
        return a == null ? null : a.toString();
    }

    // ------------------------------------------------------------------ JSON

    private static Map<String, Object> event(String name) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("event", name);
        return m;
    }

    private static void emit(Map<String, Object> obj) {
        StringBuilder sb = new StringBuilder();
        writeJson(sb, obj);
        synchronized (Driver.class) {
            out.println(sb);
            out.flush();
        }
    }

    private static void writeJson(StringBuilder sb, Object v) {
        if (v == null) {
            sb.append("null");
        } else if (v instanceof String) {
            writeString(sb, (String) v);
        } else if (v instanceof Number || v instanceof Boolean) {
            sb.append(v);
        } else if (v instanceof Map) {
            sb.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) {
                    sb.append(',');
                }
                first = false;
                writeString(sb, String.valueOf(e.getKey()));
                sb.append(':');
                writeJson(sb, e.getValue());
            }
            sb.append('}');
        } else if (v instanceof Iterable) {
            sb.append('[');
            Iterator<?> it = ((Iterable<?>) v).iterator();
            while (it.hasNext()) {
                writeJson(sb, it.next());
                if (it.hasNext()) {
                    sb.append(',');
                }
            }
            sb.append(']');
        } else {
            writeString(sb, v.toString());
        }
    }

    private static void writeString(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"':
                    sb.append("\\\"");
                    break;
                case '\\':
                    sb.append("\\\\");
                    break;
                case '\n':
                    sb.append("\\n");
                    break;
                case '\r':
                    sb.append("\\r");
                    break;
                case '\t':
                    sb.append("\\t");
                    break;
                default:
                    if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                        sb.append(String.format("\\u%04x", (int) c));
                    } else {
                        sb.append(c);
                    }
            }
        }
        sb.append('"');
    }

    /** Minimal JSON reader for the spec file: objects, arrays, strings, numbers, true/false/null. */
    static final class Json {
        private final String s;
        private int pos;

        Json(String s) {
            this.s = s;
        }

        Object parseTop() {
            Object v = value();
            ws();
            if (pos != s.length()) {
                throw error("trailing data");
            }
            return v;
        }

        private IllegalArgumentException error(String what) {
            return new IllegalArgumentException("JSON " + what + " at " + pos);
        }

        private void ws() {
            while (pos < s.length() && Character.isWhitespace(s.charAt(pos))) {
                pos++;
            }
        }

        private Object value() {
            ws();
            if (pos >= s.length()) {
                throw error("unexpected end");
            }
            char c = s.charAt(pos);
            if (c == '{') {
                pos++;
                Map<String, Object> m = new LinkedHashMap<>();
                ws();
                if (s.charAt(pos) == '}') {
                    pos++;
                    return m;
                }
                while (true) {
                    ws();
                    String k = string();
                    ws();
                    expect(':');
                    m.put(k, value());
                    ws();
                    if (s.charAt(pos) == ',') {
                        pos++;
                    } else {
                        expect('}');
                        return m;
                    }
                }
            } else if (c == '[') {
                pos++;
                List<Object> l = new ArrayList<>();
                ws();
                if (s.charAt(pos) == ']') {
                    pos++;
                    return l;
                }
                while (true) {
                    l.add(value());
                    ws();
                    if (s.charAt(pos) == ',') {
                        pos++;
                    } else {
                        expect(']');
                        return l;
                    }
                }
            } else if (c == '"') {
                return string();
            } else if (s.startsWith("true", pos)) {
                pos += 4;
                return Boolean.TRUE;
            } else if (s.startsWith("false", pos)) {
                pos += 5;
                return Boolean.FALSE;
            } else if (s.startsWith("null", pos)) {
                pos += 4;
                return null;
            } else {
                int start = pos;
                while (pos < s.length() && "+-0123456789.eE".indexOf(s.charAt(pos)) >= 0) {
                    pos++;
                }
                if (start == pos) {
                    throw error("unexpected character");
                }
                String num = s.substring(start, pos);
                if (num.contains(".") || num.contains("e") || num.contains("E")) {
                    return Double.parseDouble(num);
                }
                return Long.parseLong(num);
            }
        }

        private void expect(char c) {
            if (pos >= s.length() || s.charAt(pos) != c) {
                throw error("expected '" + c + "'");
            }
            pos++;
        }

        private String string() {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (true) {
                if (pos >= s.length()) {
                    throw error("unterminated string");
                }
                char c = s.charAt(pos++);
                if (c == '"') {
                    return sb.toString();
                }
                if (c != '\\') {
                    sb.append(c);
                    continue;
                }
                char e = s.charAt(pos++);
                switch (e) {
                    case 'b':
                        sb.append('\b');
                        break;
                    case 'f':
                        sb.append('\f');
                        break;
                    case 'n':
                        sb.append('\n');
                        break;
                    case 'r':
                        sb.append('\r');
                        break;
                    case 't':
                        sb.append('\t');
                        break;
                    case 'u':
                        sb.append((char) Integer.parseInt(s.substring(pos, pos + 4), 16));
                        pos += 4;
                        break;
                    default:
                        sb.append(e);
                }
            }
        }
    }
}
