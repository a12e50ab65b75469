package pocketmq.compat5;

import com.google.gson.Gson;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonParser;
import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientConfigurationBuilder;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.message.Message;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.ProducerBuilder;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionChecker;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;
import org.apache.rocketmq.client.java.impl.producer.SendReceiptImpl;

/**
 * Scenario driver for the official RocketMQ 5.x Java client (Maven rocketmq-client-java, gRPC). A JSON-lines CLI:
 * stdout carries only JSON lines (System.out is pointed at stderr, where the client's console log goes too).
 *
 * <pre>
 * produce --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction] [--commit|--rollback|--no-end]
 *         [--linger S] [--plaintext] [--request-timeout-ms MS] [--log-dir DIR]
 * </pre>
 *
 * One JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...}, "message_group",
 * "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end": "commit"|"rollback"|"none"}. Prints
 * per message, in input order, {"ok": true, "index", "message_id", "sent_at_ms", "queue", "queue_id", "offset",
 * ["transaction_id"], ["recall_handle"], ["delivery_timestamp_ms"], ["end"]} or {"ok": false, "index", ["stage":
 * "startup"], "error"}; per transaction check {"check": true, "message_id", "resolution", "at_ms"}; then {"done":
 * true, "sent", "failed"}. The client's defaults are kept: TLS on (trusting any certificate); --plaintext sets
 * enableSsl(false). The transaction checker answers from the user property pmqCheck (COMMIT, ROLLBACK, else UNKNOWN).
 */
public final class Driver {
    static final String CHECK_PROPERTY = "pmqCheck";
    static final Gson GSON = new Gson();
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

    static String errorText(Throwable t) {
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    static void finish(int code) {
        out.flush();
        System.err.flush();
        Runtime.getRuntime().halt(code); // the client's threads are not all daemons
    }

    static final class Args {
        String endpoints;
        String topic;
        String kind = "normal";
        String end = "commit";
        double linger;
        boolean plaintext;
        long requestTimeoutMs = 3000;
        String logDir;
    }

    static Args parse(String[] argv) {
        if (argv.length == 0 || !"produce".equals(argv[0])) {
            throw new IllegalArgumentException("usage: produce --endpoints HOST:PORT --topic T ...");
        }
        Args a = new Args();
        for (int i = 1; i < argv.length; i++) {
            String arg = argv[i];
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
                default: throw new IllegalArgumentException("unknown argument " + arg);
            }
        }
        if (a.endpoints == null || a.topic == null) {
            throw new IllegalArgumentException("--endpoints and --topic are required");
        }
        return a;
    }

    public static void main(String[] argv) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        Args args = parse(argv);
        if (args.logDir != null) {
            System.setProperty("rocketmq.log.root", args.logDir); // read when the client's logback starts
        }
        System.setProperty("mq.consoleAppender.enabled", "true"); // the client's log on stderr too
        produce(args);
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
        if (r.getRecallHandle() != null && !r.getRecallHandle().isEmpty()) {
            m.put("recall_handle", r.getRecallHandle());
        }
        if (due != null) {
            m.put("delivery_timestamp_ms", due);
        }
        return m;
    }

    static void produce(Args args) throws Exception {
        List<JsonObject> specs = readSpecs();
        ClientServiceProvider provider = ClientServiceProvider.loadService();
        ClientConfigurationBuilder cb = ClientConfiguration.newBuilder().setEndpoints(args.endpoints)
            .setRequestTimeout(Duration.ofMillis(args.requestTimeoutMs));
        if (args.plaintext) {
            cb.enableSsl(false);
        }
        ProducerBuilder pb = provider.newProducerBuilder().setClientConfiguration(cb.build()).setTopics(args.topic);
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

    static void shutdown(Producer producer, long timeoutMs) throws InterruptedException {
        Thread worker = new Thread(() -> {
            try {
                producer.close();
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
}
