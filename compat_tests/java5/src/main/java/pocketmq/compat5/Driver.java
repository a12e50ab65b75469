package pocketmq.compat5;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientConfigurationBuilder;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.ProducerBuilder;
import org.apache.rocketmq.client.apis.producer.RecallReceipt;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionChecker;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;
import org.apache.rocketmq.client.java.impl.producer.SendReceiptImpl;
import org.apache.rocketmq.client.java.message.MessageViewImpl;

/**
 * Scenario driver for the official RocketMQ 5.x Java client (Maven rocketmq-client-java, gRPC). A JSON-lines CLI:
 * stdout carries only JSON lines (System.out is pointed at stderr, where the client's console log goes too).
 *
 * <pre>
 * produce        --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction] [--commit|--rollback|--no-end]
 *                [--linger S]
 * simple-consume --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
 *                [--invisible-s 15] [--await-s 5] [--batch 16] [--linger S] [--no-ack]
 * push-consume   --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
 *                [--fail-first | --fail-always] [--threads 4] [--linger S]
 * every command: [--plaintext] [--request-timeout-ms MS] [--log-dir DIR]
 * </pre>
 *
 * produce: one JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...},
 * "message_group", "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end":
 * "commit"|"rollback"|"none", "recall": true}. Prints per message, in input order, {"ok": true, "index",
 * "message_id", "sent_at_ms", "queue", "queue_id", "offset", ["transaction_id"], "recall_handle" (null: none),
 * ["delivery_timestamp_ms"], ["end"]} or
 * {"ok": false, "index", ["stage": "startup"], "error"}; per transaction check {"check": true, "message_id",
 * "resolution", "at_ms"}; then {"done": true, "sent", "failed"}. The transaction checker answers from the user
 * property pmqCheck (COMMIT, ROLLBACK, else UNKNOWN). "recall": true recalls the message once its send succeeded
 * (Producer#recallMessage with the topic and the receipt's recall handle); its send line then also carries
 * "recalled": true and "recalled_message_id", or "recalled": false and "recall_error".
 *
 * simple-consume / push-consume (SimpleConsumer receive + ack / PushConsumer with a MessageListener), as the
 * commands of compat_tests/python5/driver.py: {"ready": true, "at_ms"} once the client is built (started), then one
 * line per delivery {"message_id", "topic", "body_b64", "tag", "keys" (sorted), "properties" (the client's user
 * properties), "message_group", "delivery_attempt", "delivery_timestamp_ms" (null: none), "born_host",
 * "born_timestamp_ms", "store_timestamp_ms" (always null: the client does not expose it), "message_type",
 * "corrupted", "received_at_ms", and "acked" (simple; "ack_error" when the ack failed) or "result":
 * SUCCESS|FAILURE (push)}; {"ok": false, "stage": "startup"|"receive", "error"} on errors (a failed receive is
 * retried after 1 s); stop at N deliveries (plus --linger seconds), at the timeout or on SIGTERM; then {"done":
 * true, "received": n, "errors": e} (push: "received" counts SUCCESS answers, "deliveries" all of them). The client's
 * MessageView has no message type: "message_type" is derived from what it has (a message group: FIFO, a delivery
 * timestamp: DELAY, else NORMAL), so a TRANSACTION message shows as NORMAL. --fail-first answers FAILURE to each
 * message's first delivery, --fail-always to every delivery (N then counts deliveries, not SUCCESS answers).
 *
 * The client's defaults are kept: TLS on (trusting any certificate); --plaintext sets enableSsl(false).
 */
public final class Driver {
    static final String CHECK_PROPERTY = "pmqCheck";
    static final Gson GSON = new GsonBuilder().serializeNulls().create(); // consumer lines carry explicit nulls
    static PrintStream out;

    private Driver() {
    }

    static synchronized void emit(Map<String, Object> obj) {
        out.println(GSON.toJson(obj));
        out.flush();
    }

    static Map<String, Object> line(Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (int i = 0; i < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        return m;
    }

    /** "Class: message", with the causes' the same way (a failed start-up hides the reason in its cause). */
    static String errorText(Throwable t) {
        String text = t.getClass().getSimpleName() + ": " + t.getMessage();
        Throwable cause = t.getCause();
        for (int depth = 0; cause != null && cause != t && depth < 5; depth++, cause = cause.getCause()) {
            text += " (cause: " + cause.getClass().getSimpleName() + ": " + cause.getMessage() + ")";
        }
        return text;
    }

    static void finish(int code) {
        STOPPED.countDown();
        out.flush();
        System.err.flush();
        Runtime.getRuntime().halt(code); // the client's threads are not all daemons
    }

    static final class Args {
        String command;
        String endpoints;
        String topic;
        String kind = "normal";
        String end = "commit";
        double linger;
        boolean plaintext;
        long requestTimeoutMs = 3000;
        String logDir;
        // consumers
        String group;
        String tagExpression;
        String sql;
        Integer expect;
        Double timeout;
        int invisibleS = 15;
        int awaitS = 5;
        int batch = 16;
        boolean noAck;
        boolean failFirst;
        boolean failAlways;
        int threads = 4;
    }

    static final Set<String> COMMANDS = new HashSet<>(java.util.Arrays.asList("produce", "simple-consume",
        "push-consume"));

    static Args parse(String[] argv) {
        if (argv.length == 0 || !COMMANDS.contains(argv[0])) {
            throw new IllegalArgumentException("usage: produce|simple-consume|push-consume --endpoints HOST:PORT "
                + "--topic T ...");
        }
        Args a = new Args();
        a.command = argv[0];
        boolean consumer = !"produce".equals(a.command);
        for (int i = 1; i < argv.length; i++) {
            String arg = argv[i];
            if (!consumer && CONSUMER_ONLY.contains(arg) || consumer && PRODUCER_ONLY.contains(arg)
                || "simple-consume".equals(a.command) && PUSH_ONLY.contains(arg)
                || "push-consume".equals(a.command) && SIMPLE_ONLY.contains(arg)) {
                throw new IllegalArgumentException(arg + " does not apply to " + a.command);
            }
            switch (arg) {
                case "--endpoints": a.endpoints = argv[++i]; break;
                case "--topic": a.topic = argv[++i]; break;
                case "--kind": a.kind = argv[++i]; break;
                case "--commit": a.end = "commit"; break;
                case "--rollback": a.end = "rollback"; break;
                case "--no-end": a.end = "none"; break;
                case "--linger": a.linger = Double.parseDouble(argv[++i]); break;
                case "--plaintext": a.plaintext = true; break;
                case "--request-timeout-ms": a.requestTimeoutMs = Long.parseLong(argv[++i]); break;
                case "--log-dir": a.logDir = argv[++i]; break;
                case "--group": a.group = argv[++i]; break;
                case "--tag-expression": a.tagExpression = argv[++i]; break;
                case "--sql": a.sql = argv[++i]; break;
                case "--expect": a.expect = Integer.parseInt(argv[++i]); break;
                case "--timeout": a.timeout = Double.parseDouble(argv[++i]); break;
                case "--invisible-s": a.invisibleS = Integer.parseInt(argv[++i]); break;
                case "--await-s": a.awaitS = Integer.parseInt(argv[++i]); break;
                case "--batch": a.batch = Integer.parseInt(argv[++i]); break;
                case "--no-ack": a.noAck = true; break;
                case "--fail-first": a.failFirst = true; break;
                case "--fail-always": a.failAlways = true; break;
                case "--threads": a.threads = Integer.parseInt(argv[++i]); break;
                default: throw new IllegalArgumentException("unknown argument " + arg);
            }
        }
        if (a.endpoints == null || a.topic == null) {
            throw new IllegalArgumentException("--endpoints and --topic are required");
        }
        if (consumer && (a.group == null || a.expect == null || a.timeout == null)) {
            throw new IllegalArgumentException("--group, --expect and --timeout are required");
        }
        if (a.tagExpression != null && a.sql != null) {
            throw new IllegalArgumentException("--tag-expression and --sql exclude each other");
        }
        if (a.failFirst && a.failAlways) {
            throw new IllegalArgumentException("--fail-first and --fail-always exclude each other");
        }
        return a;
    }

    static final Set<String> PRODUCER_ONLY = new HashSet<>(java.util.Arrays.asList("--kind", "--commit",
        "--rollback", "--no-end"));
    static final Set<String> CONSUMER_ONLY = new HashSet<>(java.util.Arrays.asList("--group", "--tag-expression",
        "--sql", "--expect", "--timeout", "--invisible-s", "--await-s", "--batch", "--no-ack", "--fail-first",
        "--fail-always", "--threads"));
    static final Set<String> SIMPLE_ONLY = new HashSet<>(java.util.Arrays.asList("--invisible-s", "--await-s",
        "--batch", "--no-ack"));
    static final Set<String> PUSH_ONLY = new HashSet<>(java.util.Arrays.asList("--fail-first", "--fail-always",
        "--threads"));

    public static void main(String[] argv) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        Args args = parse(argv);
        if (args.logDir != null) {
            System.setProperty("rocketmq.log.root", args.logDir); // read when the client's logback starts
        }
        System.setProperty("mq.consoleAppender.enabled", "true"); // the client's log on stderr too
        switch (args.command) {
            case "simple-consume": simpleConsume(args); break;
            case "push-consume": pushConsume(args); break;
            default: produce(args); break;
        }
    }

    static List<JsonObject> readSpecs() throws Exception {
        List<JsonObject> specs = new ArrayList<>();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String raw;
        while ((raw = in.readLine()) != null) {
            if (!raw.trim().isEmpty()) {
                specs.add(JsonParser.parseString(raw).getAsJsonObject());
            }
        }
        return specs;
    }

    static String str(JsonObject spec, String name) {
        JsonElement e = spec.get(name);
        return e == null || e.isJsonNull() ? null : e.getAsString();
    }

    static String kindMismatch(String kind, JsonObject spec) {
        boolean group = str(spec, "message_group") != null;
        boolean delay = str(spec, "delivery_timestamp_ms") != null || str(spec, "delivery_delay_ms") != null;
        boolean wantGroup = "fifo".equals(kind);
        boolean wantDelay = "delay".equals(kind);
        if (group != wantGroup || delay != wantDelay) {
            return "a " + kind + " message needs message_group=" + wantGroup + ", delivery time=" + wantDelay;
        }
        return null;
    }

    /** The client message of one input line, and the delivery instant (ms) requested, if any (else null). */
    static Object[] message(ClientServiceProvider provider, String topic, JsonObject spec) {
        MessageBuilder b = provider.newMessageBuilder().setTopic(topic)
            .setBody(Base64.getDecoder().decode(str(spec, "body_b64")));
        if (str(spec, "tag") != null) {
            b.setTag(str(spec, "tag"));
        }
        if (spec.has("keys") && spec.get("keys").isJsonArray() && spec.getAsJsonArray("keys").size() > 0) {
            List<String> keys = new ArrayList<>();
            for (JsonElement k : spec.getAsJsonArray("keys")) {
                keys.add(k.getAsString());
            }
            b.setKeys(keys.toArray(new String[0]));
        }
        if (spec.has("properties") && spec.get("properties").isJsonObject()) {
            for (Map.Entry<String, JsonElement> p : spec.getAsJsonObject("properties").entrySet()) {
                b.addProperty(p.getKey(), p.getValue().getAsString());
            }
        }
        if (str(spec, "message_group") != null) {
            b.setMessageGroup(str(spec, "message_group"));
        }
        Long due = null;
        if (str(spec, "delivery_timestamp_ms") != null) {
            due = spec.get("delivery_timestamp_ms").getAsLong();
        } else if (str(spec, "delivery_delay_ms") != null) {
            due = System.currentTimeMillis() + spec.get("delivery_delay_ms").getAsLong();
        }
        if (due != null) {
            b.setDeliveryTimestamp(due);
        }
        return new Object[] {b.build(), due};
    }

    static Map<String, Object> receipt(int index, SendReceipt r, long sentAt, Long due) {
        Map<String, Object> m = line("ok", true, "index", index, "message_id", r.getMessageId().toString(),
            "sent_at_ms", sentAt);
        if (r instanceof SendReceiptImpl) {
            SendReceiptImpl impl = (SendReceiptImpl) r;
            m.put("queue", String.valueOf(impl.getMessageQueue()));
            m.put("queue_id", impl.getMessageQueue().getQueueId());
            m.put("offset", impl.getOffset());
            if (impl.getTransactionId() != null && !impl.getTransactionId().isEmpty()) {
                m.put("transaction_id", impl.getTransactionId());
            }
        }
        String handle = r.getRecallHandle();
        m.put("recall_handle", handle == null || handle.isEmpty() ? null : handle);
        if (due != null) {
            m.put("delivery_timestamp_ms", due);
        }
        return m;
    }

    /** Producer#recallMessage(topic, the receipt's recall handle); its outcome goes into the send line. */
    static void recall(Producer producer, String topic, Map<String, Object> result) {
        try {
            RecallReceipt receipt = producer.recallMessage(topic, (String) result.get("recall_handle"));
            result.put("recalled", true);
            result.put("recalled_message_id", String.valueOf(receipt.getMessageId()));
        } catch (Throwable t) {
            result.put("recalled", false);
            result.put("recall_error", errorText(t));
        }
    }

    static ClientConfiguration config(Args args) {
        ClientConfigurationBuilder cb = ClientConfiguration.newBuilder().setEndpoints(args.endpoints)
            .setRequestTimeout(Duration.ofMillis(args.requestTimeoutMs));
        if (args.plaintext) {
            cb.enableSsl(false);
        }
        return cb.build();
    }

    static void produce(Args args) throws Exception {
        List<JsonObject> specs = readSpecs();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        ProducerBuilder pb = provider.newProducerBuilder().setClientConfiguration(config(args)).setTopics(args.topic);
        final Set<String> answered = new HashSet<>();
        if ("transaction".equals(args.kind)) {
            pb.setTransactionChecker(new TransactionChecker() {
                @Override
                public TransactionResolution check(MessageView view) {
                    String answer = view.getProperties().getOrDefault(CHECK_PROPERTY, "").toUpperCase();
                    TransactionResolution resolution = "COMMIT".equals(answer) ? TransactionResolution.COMMIT
                        : "ROLLBACK".equals(answer) ? TransactionResolution.ROLLBACK : TransactionResolution.UNKNOWN;
                    String id = view.getMessageId().toString();
                    emit(line("check", true, "message_id", id, "at_ms", System.currentTimeMillis(),
                        "resolution", resolution.name()));
                    if (resolution != TransactionResolution.UNKNOWN) {
                        synchronized (answered) {
                            answered.add(id);
                        }
                    }
                    return resolution;
                }
            });
        }
        Producer producer;
        try {
            producer = pb.build();
        } catch (Throwable t) {
            for (int i = 0; i < specs.size(); i++) {
                emit(line("ok", false, "index", i, "stage", "startup", "error", errorText(t)));
            }
            emit(line("done", true, "sent", 0, "failed", specs.size()));
            finish(0);
            return;
        }
        int sent = 0;
        int failed = 0;
        Set<String> leftOpen = new HashSet<>();
        for (int index = 0; index < specs.size(); index++) {
            JsonObject spec = specs.get(index);
            try {
                String problem = kindMismatch("transaction".equals(args.kind) ? "normal" : args.kind, spec);
                if (problem != null) {
                    throw new IllegalArgumentException(problem);
                }
                Object[] built = message(provider, args.topic, spec);
                Message msg = (Message) built[0];
                Long due = (Long) built[1];
                long sentAt = System.currentTimeMillis();
                Map<String, Object> result;
                if (!"transaction".equals(args.kind)) {
                    result = receipt(index, producer.send(msg), sentAt, due);
                } else {
                    Transaction tx = producer.beginTransaction();
                    result = receipt(index, producer.send(msg, tx), sentAt, due);
                    String end = str(spec, "end") != null ? str(spec, "end") : args.end;
                    if ("commit".equals(end)) {
                        tx.commit();
                    } else if ("rollback".equals(end)) {
                        tx.rollback();
                    } else {
                        leftOpen.add((String) result.get("message_id"));
                    }
                    result.put("end", end);
                }
                if (spec.has("recall") && spec.get("recall").getAsBoolean()) {
                    recall(producer, args.topic, result);
                }
                emit(result);
                sent++;
            } catch (Throwable t) {
                emit(line("ok", false, "index", index, "error", errorText(t)));
                failed++;
            }
        }
        linger(args.linger, leftOpen, answered);
        shutdown(producer, 15_000);
        emit(line("done", true, "sent", sent, "failed", failed));
        finish(0);
    }

    /** Stay up {@code seconds} at most; with open transactions only until the checker answered each of them. */
    static void linger(double seconds, Set<String> leftOpen, Set<String> answered) throws InterruptedException {
        long deadline = System.nanoTime() + (long) (seconds * 1e9);
        while (System.nanoTime() < deadline) {
            boolean done;
            synchronized (answered) {
                done = !leftOpen.isEmpty() && answered.containsAll(leftOpen);
            }
            if (done) {
                long left = (deadline - System.nanoTime()) / 1_000_000;
                Thread.sleep(Math.max(0, Math.min(1000, left))); // time for the client's END_TRANSACTION
                return;
            }
            Thread.sleep(100);
        }
    }

    /** close() in a thread: a stuck close must not keep the driver from printing its done line. */
    static void shutdown(java.io.Closeable client, long timeoutMs) throws InterruptedException {
        Thread worker = new Thread(() -> {
            try {
                client.close();
            } catch (Throwable t) {
                System.err.println("driver: close failed: " + errorText(t));
            }
        }, "shutdown");
        worker.setDaemon(true);
        worker.start();
        worker.join(timeoutMs);
        if (worker.isAlive()) {
            System.err.println("driver: close did not finish within " + timeoutMs + " ms");
        }
    }

    // ------------------------------------------------------------------------------------------------ consumers

    static final AtomicBoolean STOP = new AtomicBoolean();
    static final CountDownLatch STOPPED = new CountDownLatch(1);

    /**
     * SIGTERM starts the JVM's shutdown: the hook asks the consumer loop to stop and holds the JVM until that loop
     * closed the client and printed its done line ({@link #finish} halts the JVM, so the hook never outlives it).
     */
    static void stopOnSigterm() {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            STOP.set(true);
            try {
                STOPPED.await(60, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "sigterm"));
    }

    static long nowMs() {
        return System.currentTimeMillis();
    }

    static FilterExpression filter(Args args) {
        if (args.sql != null) {
            return new FilterExpression(args.sql, FilterExpressionType.SQL92);
        }
        return new FilterExpression(args.tagExpression == null ? "*" : args.tagExpression, FilterExpressionType.TAG);
    }

    /** One delivery line; the client's MessageView has no message type, so it is derived from its other fields. */
    static Map<String, Object> delivery(MessageView view) {
        ByteBuffer body = view.getBody().duplicate();
        byte[] bytes = new byte[body.remaining()];
        body.get(bytes);
        List<String> keys = new ArrayList<>(view.getKeys());
        Collections.sort(keys);
        String group = view.getMessageGroup().orElse(null);
        Long due = view.getDeliveryTimestamp().orElse(null);
        String type = group != null ? "FIFO" : due != null ? "DELAY" : "NORMAL";
        Boolean corrupted = view instanceof MessageViewImpl ? ((MessageViewImpl) view).isCorrupted() : null;
        return line("message_id", view.getMessageId().toString(), "topic", view.getTopic(),
            "body_b64", Base64.getEncoder().encodeToString(bytes), "tag", view.getTag().orElse(null), "keys", keys,
            "properties", new HashMap<>(view.getProperties()), "message_group", group,
            "delivery_attempt", view.getDeliveryAttempt(), "delivery_timestamp_ms", due,
            "born_host", view.getBornHost(), "born_timestamp_ms", view.getBornTimestamp(),
            "store_timestamp_ms", null, "message_type", type, "corrupted", corrupted, "received_at_ms", nowMs());
    }

    static void simpleConsume(Args args) throws Exception {
        stopOnSigterm();
        SimpleConsumer consumer;
        try {
            consumer = ClientServiceProvider.loadService().newSimpleConsumerBuilder()
                .setClientConfiguration(config(args)).setConsumerGroup(args.group)
                .setSubscriptionExpressions(Collections.singletonMap(args.topic, filter(args)))
                .setAwaitDuration(Duration.ofSeconds(args.awaitS)).build();
        } catch (Throwable t) {
            emit(line("ok", false, "stage", "startup", "error", errorText(t)));
            emit(line("done", true, "received", 0, "errors", 1));
            finish(0);
            return;
        }
        emit(line("ready", true, "at_ms", nowMs()));
        long deadline = System.nanoTime() + (long) (args.timeout * 1e9);
        Long lingerUntil = null;
        int received = 0;
        int errors = 0;
        while (!STOP.get()) {
            long now = System.nanoTime();
            if (now >= deadline || lingerUntil != null && now >= lingerUntil) {
                break;
            }
            List<MessageView> messages;
            try {
                messages = consumer.receive(args.batch, Duration.ofSeconds(args.invisibleS));
            } catch (Throwable t) {
                if (STOP.get()) {
                    break; // the client's own shutdown hook may have closed it
                }
                errors++;
                emit(line("ok", false, "stage", "receive", "error", errorText(t), "at_ms", nowMs()));
                Thread.sleep(1000);
                continue;
            }
            for (MessageView view : messages) {
                Map<String, Object> m = delivery(view);
                m.put("acked", false);
                if (!args.noAck) {
                    try {
                        consumer.ack(view);
                        m.put("acked", true);
                    } catch (Throwable t) {
                        m.put("ack_error", errorText(t));
                    }
                }
                emit(m);
                received++;
            }
            if (received >= args.expect && lingerUntil == null) {
                lingerUntil = System.nanoTime() + (long) (args.linger * 1e9);
            }
        }
        shutdown(consumer, 15_000);
        emit(line("done", true, "received", received, "errors", errors));
        finish(0);
    }

    static void pushConsume(Args args) throws Exception {
        stopOnSigterm();
        final Object lock = new Object();
        final int[] counts = {0, 0}; // SUCCESS answers, all deliveries
        final Set<String> failedOnce = new HashSet<>();
        final CountDownLatch enough = new CountDownLatch(1);
        PushConsumer consumer;
        try {
            consumer = ClientServiceProvider.loadService().newPushConsumerBuilder()
                .setClientConfiguration(config(args)).setConsumerGroup(args.group)
                .setSubscriptionExpressions(Collections.singletonMap(args.topic, filter(args)))
                .setConsumptionThreadCount(args.threads)
                .setMessageListener(view -> {
                    Map<String, Object> m = delivery(view);
                    boolean fail;
                    synchronized (lock) {
                        fail = args.failAlways || args.failFirst && failedOnce.add(view.getMessageId().toString());
                        if (!fail) {
                            counts[0]++;
                        }
                        counts[1]++;
                        if ((args.failAlways ? counts[1] : counts[0]) >= args.expect) {
                            enough.countDown();
                        }
                    }
                    m.put("result", fail ? "FAILURE" : "SUCCESS");
                    emit(m);
                    return fail ? ConsumeResult.FAILURE : ConsumeResult.SUCCESS;
                })
                .build();
        } catch (Throwable t) {
            emit(line("ok", false, "stage", "startup", "error", errorText(t)));
            emit(line("done", true, "received", 0, "deliveries", 0));
            finish(0);
            return;
        }
        emit(line("ready", true, "at_ms", nowMs()));
        long deadline = System.nanoTime() + (long) (args.timeout * 1e9);
        while (!STOP.get() && enough.getCount() > 0 && System.nanoTime() < deadline) {
            enough.await(200, TimeUnit.MILLISECONDS);
        }
        if (enough.getCount() == 0) {
            long lingerUntil = System.nanoTime() + (long) (args.linger * 1e9);
            while (!STOP.get() && System.nanoTime() < lingerUntil) {
                Thread.sleep(100);
            }
        }
        shutdown(consumer, 15_000);
        synchronized (lock) {
            emit(line("done", true, "received", counts[0], "deliveries", counts[1]));
        }
        finish(0);
    }
}
