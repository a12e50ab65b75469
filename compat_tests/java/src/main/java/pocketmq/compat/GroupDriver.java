package pocketmq.compat;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
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
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.rocketmq.client.consumer.AllocateMessageQueueStrategy;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyContext;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyContext;
import org.apache.rocketmq.client.consumer.listener.ConsumeOrderlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.consumer.listener.MessageListenerOrderly;
import org.apache.rocketmq.client.consumer.rebalance.AllocateMessageQueueAveragely;
import org.apache.rocketmq.client.impl.consumer.ProcessQueue;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.MessageQueueSelector;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * Consumer-group scenarios for the stock RocketMQ Java client (remoting), compiled unchanged against 4.9.8 and 5.3.3:
 * orderly consumption with a key selector, clustering and broadcasting groups, retries and dead letters
 * (compat_tests/test_java_groups.py through compat_tests/java_groups.py).
 *
 * <pre>
 * GroupDriver create-topic --namesrv ADDR --topic T[:N][,T2[:N2]...] --queues N
 * GroupDriver produce --namesrv ADDR --topic T --group G --prefix P --mode sync|batch --count N [--batch-size K]
 *                     [--binary true]
 * GroupDriver produce --namesrv ADDR --topic T --group G --prefix P --mode ordered --keys K --steps S [--pace-ms MS]
 * GroupDriver consume --namesrv ADDR --topic T --group G [--listener concurrent|orderly]
 *                     [--model clustering|broadcasting] [--fail never|first|always] [--max-reconsume N]
 *                     [--expect N] [--timeout S] [--from first|last] [--linger-ms MS] [--consume-ms MS]
 *                     [--pull-batch-size N]
 * </pre>
 *
 * Generated message i of prefix P: body "P#i|" (then every byte value when --binary), tags "tag{i%3}", keys
 * "P-key-i" and "P-shared", user properties pmqIndex=i and pmqText (non-ASCII). Ordered message (key k, step s):
 * body "P|P-k{k}|{s}", keys "P-k{k}" and "P-k{k}#{s}", properties pmqKey and pmqStep, sent synchronously with a
 * selector choosing queue floorMod(key.hashCode(), queues); steps go out in order, all keys per step.
 *
 * The consumer prints one line per delivery (before the listener returns, so per queue the line order is the
 * consumption order; "seq" numbers lines within the JVM), {"event": "allocate"} whenever the allocation strategy's
 * result for a topic changes (clustering), {"event": "owned"} whenever the set of queues with a live process queue
 * changes (polled every 20 ms), and "ready", "stopping", "stopped". It stops when --expect distinct bodies were
 * consumed successfully (then lingers), at --timeout, or when "stop" (or end of input) arrives on stdin.
 * "fail first" answers RECONSUME_LATER when reconsumeTimes is 0, "always" every time.
 *
 * stdout carries only JSON lines; everything else goes to stderr.
 */
public final class GroupDriver {
    private static final String UNICODE = "\u00fcn\u00efc\u00f8d\u00e9 \u2713 \u65e5\u672c\u8a9e a=b;c:d";
    private static PrintStream out;
    private static long seq;

    private GroupDriver() {
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        if (args.length < 1) {
            usage("missing command");
        }
        Map<String, String> opts = parseOptions(args);
        configure(opts);
        String command = args[0];
        int rc = 2;
        if ("create-topic".equals(command)) {
            rc = createTopic(opts);
        } else if ("produce".equals(command)) {
            rc = produce(opts);
        } else if ("consume".equals(command)) {
            rc = consume(opts);
        } else {
            usage("unknown command " + command);
        }
        out.flush();
        System.exit(rc);
    }

    // ------------------------------------------------------------------ options, logging

    private static void usage(String why) {
        System.err.println("usage error: " + why);
        System.err.println("GroupDriver create-topic|produce|consume --namesrv ADDR --topic T ...");
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

    private static int intOpt(Map<String, String> opts, String name, int dflt) {
        return opts.containsKey(name) ? Integer.parseInt(opts.get(name)) : dflt;
    }

    private static void configure(Map<String, String> opts) {
        String dir = opts.containsKey("log-dir") ? opts.get("log-dir")
            : Paths.get(System.getProperty("java.io.tmpdir"), "pocketmq-java-client-logs").toString();
        String level = opts.getOrDefault("log-level", "WARN");
        setDefault("rocketmq.client.logUseSlf4j", "false"); // 4.x: the client's own file logger under logRoot
        setDefault("rocketmq.client.logRoot", dir);
        setDefault("rocketmq.client.logLevel", level);
        setDefault("rocketmq.client.logFileMaxIndex", "2");
        setDefault("rocketmq.log.root", dir); // 5.x: shaded logback
        setDefault("rocketmq.log.level", level);
        setDefault("mq.consoleAppender.enabled", "false");
        // Broadcasting consumers keep their offsets in local files: keep them out of the home directory.
        setDefault("rocketmq.client.localOffsetStoreDir", Paths.get(dir, "offsets").toString());
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

    private static DefaultMQProducer startProducer(Map<String, String> opts) throws Exception {
        DefaultMQProducer producer = new DefaultMQProducer(opts.getOrDefault("group", "pmq-group-driver"));
        producer.setNamesrvAddr(req(opts, "namesrv"));
        producer.setInstanceName(instanceName("producer"));
        producer.setVipChannelEnabled(false);
        producer.start();
        return producer;
    }

    // ------------------------------------------------------------------ create-topic

    /** DefaultMQProducer.createTopic: (key, topic, queues) in 4.x, (key, topic, queues, attributes) in 5.x. */
    private static void createTopic(DefaultMQProducer producer, String topic, int queues) throws Exception {
        for (Method m : DefaultMQProducer.class.getMethods()) {
            if (!"createTopic".equals(m.getName())) {
                continue;
            }
            Class<?>[] p = m.getParameterTypes();
            if (p.length == 3 && p[2] == int.class) {
                m.invoke(producer, "TBW102", topic, queues);
                return;
            }
            if (p.length == 4 && p[2] == int.class && Map.class.isAssignableFrom(p[3])) {
                m.invoke(producer, "TBW102", topic, queues, new HashMap<String, String>());
                return;
            }
        }
        throw new IllegalStateException("no DefaultMQProducer.createTopic(key, topic, queues[, attributes])");
    }

    private static int createTopic(Map<String, String> opts) throws Exception {
        int defaultQueues = Integer.parseInt(req(opts, "queues"));
        DefaultMQProducer producer = startProducer(opts);
        try {
            for (String item : req(opts, "topic").split(",")) {
                // "topic:queues" (a colon cannot occur in a topic name) or just "topic" with --queues
                int colon = item.lastIndexOf(':');
                String topic = colon < 0 ? item : item.substring(0, colon);
                int queues = colon < 0 ? defaultQueues : Integer.parseInt(item.substring(colon + 1));
                createTopic(producer, topic, queues);
                // Until the name server routes it with all its queues (the broker re-registers on the change).
                long deadline = System.currentTimeMillis() + 20_000;
                int seen = 0;
                while (true) {
                    try {
                        seen = producer.fetchPublishMessageQueues(topic).size();
                    } catch (Exception e) {
                        seen = 0;
                    }
                    if (seen >= queues || System.currentTimeMillis() > deadline) {
                        break;
                    }
                    Thread.sleep(100);
                }
                Map<String, Object> line = event("created");
                line.put("topic", topic);
                line.put("queues", seen);
                emit(line);
            }
        } finally {
            producer.shutdown();
        }
        return 0;
    }

    // ------------------------------------------------------------------ produce

    private static Message generated(String topic, String prefix, int i, boolean binary) {
        byte[] head = (prefix + "#" + i + "|").getBytes(StandardCharsets.UTF_8);
        byte[] body = head;
        if (binary) {
            body = new byte[head.length + 256];
            System.arraycopy(head, 0, body, 0, head.length);
            for (int b = 0; b < 256; b++) {
                body[head.length + b] = (byte) b;
            }
        }
        Message msg = new Message(topic, "tag" + (i % 3), body);
        List<String> keys = new ArrayList<>();
        keys.add(prefix + "-key-" + i);
        keys.add(prefix + "-shared");
        msg.setKeys(keys);
        msg.putUserProperty("pmqIndex", String.valueOf(i));
        msg.putUserProperty("pmqText", UNICODE);
        return msg;
    }

    private static Map<String, Object> sentLine(int index, Message msg, SendResult r, String msgId, long offset) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("index", index);
        line.put("status", String.valueOf(r.getSendStatus()));
        line.put("msgId", msgId);
        line.put("queueId", r.getMessageQueue() == null ? null : r.getMessageQueue().getQueueId());
        line.put("queueOffset", offset);
        line.put("body", Base64.getEncoder().encodeToString(msg.getBody()));
        line.put("keys", splitKeys(msg.getKeys()));
        line.put("tags", msg.getTags());
        line.put("props", userProps(msg.getProperties()));
        return line;
    }

    private static int produce(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        String prefix = req(opts, "prefix");
        String mode = req(opts, "mode");
        boolean binary = Boolean.parseBoolean(opts.getOrDefault("binary", "false"));
        DefaultMQProducer producer = startProducer(opts);
        emit(event("started"));
        int failed = 0;
        try {
            if ("ordered".equals(mode)) {
                failed = produceOrdered(producer, topic, prefix, Integer.parseInt(req(opts, "keys")),
                    Integer.parseInt(req(opts, "steps")), intOpt(opts, "pace-ms", 0));
            } else if ("sync".equals(mode)) {
                int count = Integer.parseInt(req(opts, "count"));
                for (int i = 0; i < count; i++) {
                    Message msg = generated(topic, prefix, i, binary);
                    try {
                        SendResult r = producer.send(msg);
                        emit(sentLine(i, msg, r, r.getMsgId(), r.getQueueOffset()));
                    } catch (Exception e) {
                        emit(errorLine(i, e));
                        failed++;
                    }
                }
            } else if ("batch".equals(mode)) {
                int count = Integer.parseInt(req(opts, "count"));
                int size = intOpt(opts, "batch-size", 100);
                for (int start = 0; start < count; start += size) {
                    List<Message> chunk = new ArrayList<>();
                    for (int i = start; i < Math.min(count, start + size); i++) {
                        chunk.add(generated(topic, prefix, i, binary));
                    }
                    try {
                        SendResult r = producer.send(chunk);
                        String[] ids = r.getMsgId() == null ? new String[0] : r.getMsgId().split(",");
                        for (int j = 0; j < chunk.size(); j++) {
                            emit(sentLine(start + j, chunk.get(j), r, j < ids.length ? ids[j] : null,
                                r.getQueueOffset() + j));
                        }
                    } catch (Exception e) {
                        for (int j = 0; j < chunk.size(); j++) {
                            emit(errorLine(start + j, e));
                            failed++;
                        }
                    }
                }
            } else {
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

    /** Picks the queue of a business key: floorMod(key.hashCode(), number of queues). */
    private static final class ByKey implements MessageQueueSelector {
        @Override
        public MessageQueue select(List<MessageQueue> mqs, Message msg, Object arg) {
            return mqs.get(Math.floorMod(arg.hashCode(), mqs.size()));
        }
    }

    private static int produceOrdered(DefaultMQProducer producer, String topic, String prefix, int keys, int steps,
                                      int paceMs) throws InterruptedException {
        MessageQueueSelector selector = new ByKey();
        int failed = 0;
        int index = 0;
        for (int step = 0; step < steps; step++) {
            for (int k = 0; k < keys; k++) {
                String key = prefix + "-k" + k;
                Message msg = new Message(topic, "ordered", (prefix + "|" + key + "|" + step)
                    .getBytes(StandardCharsets.UTF_8));
                List<String> msgKeys = new ArrayList<>();
                msgKeys.add(key);
                msgKeys.add(key + "#" + step);
                msg.setKeys(msgKeys);
                msg.putUserProperty("pmqKey", key);
                msg.putUserProperty("pmqStep", String.valueOf(step));
                try {
                    long sentAt = System.currentTimeMillis();
                    SendResult r = producer.send(msg, selector, key);
                    Map<String, Object> line = new LinkedHashMap<>();
                    line.put("index", index);
                    line.put("status", String.valueOf(r.getSendStatus()));
                    line.put("key", key);
                    line.put("step", step);
                    line.put("msgId", r.getMsgId());
                    line.put("queueId", r.getMessageQueue().getQueueId());
                    line.put("queueOffset", r.getQueueOffset());
                    line.put("sentAt", sentAt);
                    emit(line);
                } catch (Exception e) {
                    Map<String, Object> line = errorLine(index, e);
                    line.put("key", key);
                    line.put("step", step);
                    emit(line);
                    failed++;
                }
                index++;
            }
            if (paceMs > 0) {
                Thread.sleep(paceMs);
            }
        }
        return failed;
    }

    private static Map<String, Object> errorLine(int index, Throwable t) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("index", index);
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (sb.length() > 0) {
                sb.append(" <- caused by ");
            }
            sb.append(c.getClass().getName()).append(": ").append(c.getMessage());
        }
        line.put("error", sb.toString());
        return line;
    }

    // ------------------------------------------------------------------ consume

    /** The default averaging strategy, reporting every change of its result per topic. */
    private static final class ReportingAllocation implements AllocateMessageQueueStrategy {
        private final AllocateMessageQueueStrategy inner = new AllocateMessageQueueAveragely();
        private final Map<String, String> last = new ConcurrentHashMap<>();

        @Override
        public List<MessageQueue> allocate(String group, String currentCID, List<MessageQueue> mqAll,
                                           List<String> cidAll) {
            List<MessageQueue> mine = inner.allocate(group, currentCID, mqAll, cidAll);
            if (mqAll.isEmpty()) {
                return mine;
            }
            String topic = mqAll.get(0).getTopic();
            Set<Integer> ids = new TreeSet<>();
            for (MessageQueue mq : mine) {
                ids.add(mq.getQueueId());
            }
            List<String> cids = new ArrayList<>(cidAll);
            Collections.sort(cids);
            String state = cids + "/" + ids;
            if (!state.equals(last.put(topic, state))) {
                Map<String, Object> line = event("allocate");
                line.put("topic", topic);
                line.put("cids", cids);
                line.put("mine", new ArrayList<>(ids));
                line.put("queues", mqAll.size());
                emit(line);
            }
            return mine;
        }

        @Override
        public String getName() {
            return inner.getName();
        }
    }

    /** Emits {"event": "owned"} whenever the set of live (not dropped) process queues changes. */
    private static final class OwnedWatcher extends Thread {
        private final DefaultMQPushConsumer consumer;
        private volatile boolean running = true;

        OwnedWatcher(DefaultMQPushConsumer consumer) {
            super("pmq-owned-watcher");
            setDaemon(true);
            this.consumer = consumer;
        }

        @Override
        @SuppressWarnings("deprecation") // getDefaultMQPushConsumerImpl: the only view of the owned queues
        public void run() {
            String last = null;
            while (running) {
                Map<String, Set<Integer>> owned = new TreeMap<>();
                Map<String, Set<Integer>> locked = new TreeMap<>();
                try {
                    for (Map.Entry<MessageQueue, ProcessQueue> e : consumer.getDefaultMQPushConsumerImpl()
                        .getRebalanceImpl().getProcessQueueTable().entrySet()) {
                        if (e.getValue().isDropped()) {
                            continue;
                        }
                        String topic = e.getKey().getTopic();
                        owned.computeIfAbsent(topic, t -> new TreeSet<>()).add(e.getKey().getQueueId());
                        if (e.getValue().isLocked()) {
                            locked.computeIfAbsent(topic, t -> new TreeSet<>()).add(e.getKey().getQueueId());
                        }
                    }
                } catch (RuntimeException ignored) {
                    // the table is concurrent; a failed snapshot is retried next round
                }
                String state = owned + "/" + locked;
                if (!state.equals(last)) {
                    last = state;
                    Map<String, Object> line = event("owned");
                    line.put("queues", toLists(owned));
                    line.put("locked", toLists(locked));
                    emit(line);
                }
                try {
                    Thread.sleep(20);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }

        private static Map<String, Object> toLists(Map<String, Set<Integer>> m) {
            Map<String, Object> r = new TreeMap<>();
            for (Map.Entry<String, Set<Integer>> e : m.entrySet()) {
                r.put(e.getKey(), new ArrayList<>(e.getValue()));
            }
            return r;
        }
    }

    /** DefaultMQPushConsumer.setMessageModel: its enum moved packages between 4.x and 5.x. */
    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void setMessageModel(DefaultMQPushConsumer consumer, String model) throws Exception {
        for (Method m : DefaultMQPushConsumer.class.getMethods()) {
            if ("setMessageModel".equals(m.getName()) && m.getParameterTypes().length == 1) {
                Class enumType = m.getParameterTypes()[0];
                m.invoke(consumer, Enum.valueOf(enumType, model.toUpperCase()));
                return;
            }
        }
        throw new IllegalStateException("no DefaultMQPushConsumer.setMessageModel");
    }

    private static int consume(Map<String, String> opts) throws Exception {
        final int expect = intOpt(opts, "expect", 0);
        final double timeout = Double.parseDouble(opts.getOrDefault("timeout", "120"));
        final long lingerMs = Long.parseLong(opts.getOrDefault("linger-ms", "0"));
        final long consumeMs = Long.parseLong(opts.getOrDefault("consume-ms", "0"));
        final String fail = opts.getOrDefault("fail", "never");
        final String listener = opts.getOrDefault("listener", "concurrent");
        final String model = opts.getOrDefault("model", "clustering");

        final Set<String> done = Collections.synchronizedSet(new HashSet<String>());
        final AtomicInteger deliveries = new AtomicInteger();
        final CountDownLatch finish = new CountDownLatch(1);
        final AtomicReference<String> reason = new AtomicReference<>();

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(req(opts, "group"));
        consumer.setNamesrvAddr(req(opts, "namesrv"));
        consumer.setInstanceName(instanceName("consumer"));
        consumer.setVipChannelEnabled(false);
        setMessageModel(consumer, model);
        consumer.setConsumeFromWhere("last".equals(opts.get("from")) ? ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
            : ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.setAllocateMessageQueueStrategy(new ReportingAllocation());
        if (opts.containsKey("max-reconsume")) {
            consumer.setMaxReconsumeTimes(Integer.parseInt(opts.get("max-reconsume")));
        }
        if (opts.containsKey("pull-batch-size")) {
            consumer.setPullBatchSize(Integer.parseInt(opts.get("pull-batch-size")));
        }
        consumer.subscribe(req(opts, "topic"), opts.getOrDefault("expr", "*"));

        final class Deliveries {
            /** Report one delivery; returns whether the listener fails it. */
            boolean deliver(MessageExt m, long receivedAt) {
                boolean failIt = "always".equals(fail) || ("first".equals(fail) && m.getReconsumeTimes() == 0);
                Map<String, Object> line = messageLine(m);
                line.put("receivedAt", receivedAt);
                line.put("result", failIt ? "later" : "ok");
                line.put("thread", Thread.currentThread().getName());
                emit(line);
                deliveries.incrementAndGet();
                if (consumeMs > 0) {
                    try {
                        Thread.sleep(consumeMs);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
                if (!failIt) {
                    // Distinct by body: test bodies are unique, while msgIds may repeat (5.x batch ids, retries).
                    done.add(sha256(m.getBody()));
                    if (expect > 0 && done.size() >= expect && reason.compareAndSet(null, "expected")) {
                        finish.countDown();
                    }
                }
                return failIt;
            }
        }
        final Deliveries handler = new Deliveries();
        if ("orderly".equals(listener)) {
            consumer.registerMessageListener(new MessageListenerOrderly() {
                @Override
                public ConsumeOrderlyStatus consumeMessage(List<MessageExt> msgs, ConsumeOrderlyContext ctx) {
                    long receivedAt = System.currentTimeMillis();
                    boolean failed = false;
                    for (MessageExt m : msgs) {
                        failed |= handler.deliver(m, receivedAt);
                    }
                    return failed ? ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT : ConsumeOrderlyStatus.SUCCESS;
                }
            });
        } else {
            consumer.registerMessageListener(new MessageListenerConcurrently() {
                @Override
                public ConsumeConcurrentlyStatus consumeMessage(List<MessageExt> msgs,
                                                                ConsumeConcurrentlyContext ctx) {
                    long receivedAt = System.currentTimeMillis();
                    boolean failed = false;
                    for (MessageExt m : msgs) {
                        failed |= handler.deliver(m, receivedAt);
                    }
                    return failed ? ConsumeConcurrentlyStatus.RECONSUME_LATER
                        : ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
                }
            });
        }

        Thread stdin = new Thread("pmq-stdin") {
            @Override
            public void run() {
                try (BufferedReader r = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = r.readLine()) != null) {
                        if ("stop".equals(line.trim())) {
                            break;
                        }
                    }
                } catch (Exception ignored) {
                    // end of input stops the consumer as "stop" does
                }
                if (reason.compareAndSet(null, "stop")) {
                    finish.countDown();
                }
            }
        };
        stdin.setDaemon(true);

        OwnedWatcher watcher = new OwnedWatcher(consumer);
        long startedAt = System.currentTimeMillis();
        consumer.start();
        Map<String, Object> ready = event("ready");
        ready.put("startedAt", startedAt);
        ready.put("clientId", consumer.buildMQClientId());
        ready.put("messageModel", String.valueOf(consumer.getMessageModel()));
        emit(ready);
        watcher.start();
        stdin.start();

        if (!finish.await((long) (timeout * 1000), TimeUnit.MILLISECONDS)) {
            reason.compareAndSet(null, "timeout");
        }
        if ("expected".equals(reason.get()) && lingerMs > 0) {
            Thread.sleep(lingerMs);
        }
        Map<String, Object> stopping = event("stopping");
        stopping.put("reason", reason.get());
        stopping.put("distinct", done.size());
        stopping.put("deliveries", deliveries.get());
        emit(stopping);
        consumer.shutdown();
        watcher.running = false;
        emit(event("stopped"));
        return 0;
    }

    // ------------------------------------------------------------------ message lines

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

    private static List<String> splitKeys(String keys) {
        List<String> out = new ArrayList<>();
        if (keys != null) {
            for (String k : keys.split(MessageConst.KEY_SEPARATOR)) {
                if (!k.isEmpty()) {
                    out.add(k);
                }
            }
        }
        return out;
    }

    private static Map<String, Object> userProps(Map<String, String> props) {
        Map<String, Object> user = new TreeMap<>();
        if (props != null) {
            for (Map.Entry<String, String> e : props.entrySet()) {
                if (!MessageConst.STRING_HASH_SET.contains(e.getKey())) {
                    user.put(e.getKey(), e.getValue());
                }
            }
        }
        return user;
    }

    private static Map<String, Object> messageLine(MessageExt m) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("topic", m.getTopic());
        line.put("tags", m.getTags());
        line.put("keys", splitKeys(m.getKeys()));
        line.put("body", m.getBody() == null ? null : Base64.getEncoder().encodeToString(m.getBody()));
        line.put("props", userProps(m.getProperties()));
        line.put("allProps", m.getProperties() == null ? new TreeMap<String, Object>()
            : new TreeMap<String, Object>(m.getProperties()));
        line.put("msgId", m.getMsgId());
        line.put("queueId", m.getQueueId());
        line.put("queueOffset", m.getQueueOffset());
        line.put("reconsumeTimes", m.getReconsumeTimes());
        line.put("bornTimestamp", m.getBornTimestamp());
        line.put("storeTimestamp", m.getStoreTimestamp());
        return line;
    }

    // ------------------------------------------------------------------ JSON out

    private static Map<String, Object> event(String name) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("event", name);
        m.put("at", System.currentTimeMillis());
        return m;
    }

    private static void emit(Map<String, Object> obj) {
        synchronized (GroupDriver.class) {
            obj.put("seq", seq++);
            StringBuilder sb = new StringBuilder();
            writeJson(sb, obj);
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
            if (c == '"' || c == '\\') {
                sb.append('\\').append(c);
            } else if (c < 0x20 || c == 0x2028 || c == 0x2029) {
                sb.append(String.format("\\u%04x", (int) c));
            } else {
                sb.append(c);
            }
        }
        sb.append('"');
    }
}
