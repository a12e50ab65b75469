package pocketmq.compat;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import com.alibaba.fastjson.JSON;
import com.alibaba.fastjson.JSONArray;
import com.alibaba.fastjson.JSONObject;

import org.apache.rocketmq.client.producer.LocalTransactionState;
import org.apache.rocketmq.client.producer.TransactionListener;
import org.apache.rocketmq.client.producer.TransactionMQProducer;
import org.apache.rocketmq.client.producer.TransactionSendResult;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageAccessor;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;

/**
 * Transactional producer for the stock RocketMQ Java client (remoting), compiled unchanged against 4.9.8 and 5.3.3;
 * used by compat_tests/test_java_transactions.py through compat_tests/java_tx.py.
 *
 * <pre>
 * TxDriver produce --namesrv ADDR --topic T --group G --spec FILE [--send true|false] [--parallel true|false]
 *                  [--heartbeat-ms MS] [--max-run-ms MS] [--log-dir DIR] [--log-level LEVEL]
 * </pre>
 *
 * A {@code TransactionMQProducer} with a {@code TransactionListener} following a plan per message. The spec FILE is
 * a JSON list of {"body": base64, "tags": str, "keys": [str], "props": {}, "local": STATE, "checks": [STATE, ...],
 * "immunitySeconds": int (optional, sets CHECK_IMMUNITY_TIME_IN_SECONDS), "checkOnly": bool (optional: not sent by
 * this process, only its checks answered), "localDelayMs": int (optional: the local transaction takes this long)}.
 * "local" is what executeLocalTransaction returns: COMMIT_MESSAGE, ROLLBACK_MESSAGE, UNKNOW, or BLOCK (never returns:
 * the local transaction hangs, for a test that kills the process). "checks" are the answers of checkLocalTransaction to the 1st, 2nd, ... check this process
 * receives for the message (the last one repeats; none: UNKNOW). Messages are matched to the plan by their first key,
 * so a second process of the same group answers checks for messages another one sent ("checkOnly", or
 * {@code --send false} for the whole spec). Note that a 5.x producer which never sent anything does not know any
 * broker (5.x no longer looks up TBW102's route at start), so it sends no heartbeat and no broker checks it.
 *
 * The process sends every message (one after another, or each from its own thread with --parallel true), then keeps
 * answering checks until it is terminated (or --max-run-ms passes). stdout carries only JSON lines, each with "at"
 * (ms, System.currentTimeMillis()): {"event": "started"}, {"event": "local", ...} when a local transaction starts
 * ({"event": "localDone"} when a delayed one answers), {"event": "sent", ...} / {"event": "sendError", ...} per message, {"event": "allSent"} and {"event": "check", ...}
 * for every check received (transaction id, the message's properties incl. TRANSACTION_CHECK_TIMES, the answer).
 * JSON is read and written with fastjson, which both client versions depend on.
 */
public final class TxDriver {
    private static PrintStream out;

    private TxDriver() {
    }

    /** The plan for one message. */
    private static final class Plan {
        int index;
        String key;
        String local;
        boolean checkOnly;
        long localDelayMs;
        List<String> checks = new ArrayList<>();
        final AtomicInteger checksSeen = new AtomicInteger();
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        if (args.length < 1 || !"produce".equals(args[0])) {
            usage("the only command is produce");
        }
        Map<String, String> opts = parseOptions(args);
        configureLogging(opts);
        int rc = produce(opts);
        out.flush();
        System.exit(rc);
    }

    private static void usage(String why) {
        System.err.println("usage error: " + why);
        System.err.println("TxDriver produce --namesrv ADDR --topic T --group G --spec FILE ...");
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

    /** Client log files under --log-dir, nothing on the console (same settings as Driver). */
    private static void configureLogging(Map<String, String> opts) {
        String dir = opts.containsKey("log-dir") ? opts.get("log-dir")
            : Paths.get(System.getProperty("java.io.tmpdir"), "pocketmq-java-client-logs").toString();
        String level = opts.getOrDefault("log-level", "INFO");
        setDefault("rocketmq.client.logUseSlf4j", "false");  // 4.x
        setDefault("rocketmq.client.logRoot", dir);
        setDefault("rocketmq.client.logLevel", level);
        setDefault("rocketmq.client.logFileMaxIndex", "2");
        setDefault("rocketmq.log.root", dir);  // 5.x
        setDefault("rocketmq.log.level", level);
        setDefault("mq.consoleAppender.enabled", "false");
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    // ------------------------------------------------------------------ produce

    private static int produce(Map<String, String> opts) throws Exception {
        final String topic = req(opts, "topic");
        final String group = req(opts, "group");
        boolean send = Boolean.parseBoolean(opts.getOrDefault("send", "true"));
        boolean parallel = Boolean.parseBoolean(opts.getOrDefault("parallel", "false"));
        long maxRunMs = Long.parseLong(opts.getOrDefault("max-run-ms", "600000"));

        final List<Message> msgs = new ArrayList<>();
        final List<Plan> plans = new ArrayList<>();
        final Map<String, Plan> byKey = new ConcurrentHashMap<>();
        loadSpec(topic, req(opts, "spec"), msgs, plans, byKey);

        final TransactionMQProducer producer = new TransactionMQProducer(group);
        producer.setNamesrvAddr(req(opts, "namesrv"));
        producer.setInstanceName("pmq-tx-" + ManagementFactory.getRuntimeMXBean().getName().replace('@', '-') + "-"
            + System.nanoTime());
        producer.setVipChannelEnabled(false);
        producer.setSendMsgTimeout(10000);
        if (opts.containsKey("heartbeat-ms")) {
            // Heartbeats register the producer with the broker, which only checks transactions with a registered
            // producer of the group: after a broker restart or in a new process this decides when checks resume.
            int hb = Integer.parseInt(opts.get("heartbeat-ms"));
            producer.setHeartbeatBrokerInterval(hb);
            producer.setPollNameServerInterval(hb);
        }
        ExecutorService checkPool = Executors.newFixedThreadPool(4);
        producer.setExecutorService(checkPool);
        producer.setTransactionListener(new TransactionListener() {
            @Override
            public LocalTransactionState executeLocalTransaction(Message msg, Object arg) {
                Plan plan = (Plan) arg;
                Map<String, Object> line = event("local");
                line.put("index", plan.index);
                line.put("key", plan.key);
                line.put("transactionId", msg.getTransactionId());
                line.put("uniqKey", msg.getProperty(MessageConst.PROPERTY_UNIQ_CLIENT_MESSAGE_ID_KEYIDX));
                line.put("answer", plan.local);
                emit(line);
                if (plan.localDelayMs > 0) {
                    try {
                        Thread.sleep(plan.localDelayMs);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    Map<String, Object> done = event("localDone");
                    done.put("index", plan.index);
                    done.put("key", plan.key);
                    done.put("answer", plan.local);
                    emit(done);
                }
                if ("BLOCK".equals(plan.local)) {
                    while (true) {
                        try {
                            Thread.sleep(60_000);
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                            return LocalTransactionState.UNKNOW;
                        }
                    }
                }
                return LocalTransactionState.valueOf(plan.local);
            }

            @Override
            public LocalTransactionState checkLocalTransaction(MessageExt msg) {
                long at = System.currentTimeMillis();
                String key = firstKey(msg.getKeys());
                Plan plan = key == null ? null : byKey.get(key);
                String answer = "UNKNOW";
                int n = 0;
                if (plan != null) {
                    n = plan.checksSeen.incrementAndGet();
                    if (!plan.checks.isEmpty()) {
                        answer = plan.checks.get(Math.min(n, plan.checks.size()) - 1);
                    }
                }
                Map<String, Object> line = event("check");
                line.put("at", at);
                line.put("index", plan == null ? null : plan.index);
                line.put("key", key);
                line.put("n", n);
                line.put("transactionId", msg.getTransactionId());
                line.put("msgId", msg.getMsgId());
                line.put("topic", msg.getTopic());
                line.put("queueId", msg.getQueueId());
                line.put("queueOffset", msg.getQueueOffset());
                line.put("commitLogOffset", msg.getCommitLogOffset());
                line.put("bornTimestamp", msg.getBornTimestamp());
                line.put("storeTimestamp", msg.getStoreTimestamp());
                line.put("checkTimes", msg.getProperty(MessageConst.PROPERTY_TRANSACTION_CHECK_TIMES));
                line.put("body", msg.getBody() == null ? null : Base64.getEncoder().encodeToString(msg.getBody()));
                line.put("allProps", new TreeMap<>(msg.getProperties()));
                line.put("answer", answer);
                emit(line);
                return LocalTransactionState.valueOf(answer);
            }
        });
        producer.start();
        Runtime.getRuntime().addShutdownHook(new Thread(new Runnable() {
            @Override
            public void run() {
                emit(event("stopping"));
                producer.shutdown();
            }
        }));
        Map<String, Object> started = event("started");
        started.put("group", group);
        started.put("send", send);
        emit(started);

        int failed = 0;
        if (send) {
            List<Message> toSend = new ArrayList<>();
            List<Plan> toSendPlans = new ArrayList<>();
            for (int i = 0; i < msgs.size(); i++) {
                if (!plans.get(i).checkOnly) {
                    toSend.add(msgs.get(i));
                    toSendPlans.add(plans.get(i));
                }
            }
            if (parallel) {
                failed = sendParallel(producer, toSend, toSendPlans);
            } else {
                for (int i = 0; i < toSend.size(); i++) {
                    failed += sendOne(producer, toSend.get(i), toSendPlans.get(i)) ? 0 : 1;
                }
            }
        }
        Map<String, Object> allSent = event("allSent");
        allSent.put("failed", failed);
        emit(allSent);
        // Keep answering checks until terminated.
        Thread.sleep(maxRunMs);
        return failed == 0 ? 0 : 1;
    }

    private static int sendParallel(final TransactionMQProducer producer, final List<Message> msgs,
                                    final List<Plan> plans) throws InterruptedException {
        final AtomicInteger failed = new AtomicInteger();
        final CountDownLatch done = new CountDownLatch(msgs.size());
        for (int i = 0; i < msgs.size(); i++) {
            final int index = i;
            Thread t = new Thread(new Runnable() {
                @Override
                public void run() {
                    if (!sendOne(producer, msgs.get(index), plans.get(index))) {
                        failed.incrementAndGet();
                    }
                    done.countDown();
                }
            }, "tx-send-" + i);
            t.setDaemon(true);
            t.start();
        }
        // Blocked local transactions never finish: report what is done and go on answering checks.
        boolean all = done.await(30, TimeUnit.SECONDS);
        return all ? failed.get() : failed.get() + (int) done.getCount();
    }

    private static boolean sendOne(TransactionMQProducer producer, Message msg, Plan plan) {
        long sentAt = System.currentTimeMillis();
        try {
            TransactionSendResult r = producer.sendMessageInTransaction(msg, plan);
            Map<String, Object> line = event("sent");
            line.put("index", plan.index);
            line.put("key", plan.key);
            line.put("sentAt", sentAt);
            line.put("status", String.valueOf(r.getSendStatus()));
            line.put("localState", String.valueOf(r.getLocalTransactionState()));
            line.put("msgId", r.getMsgId());
            line.put("offsetMsgId", r.getOffsetMsgId());
            line.put("transactionId", r.getTransactionId());
            line.put("queueId", r.getMessageQueue() == null ? null : r.getMessageQueue().getQueueId());
            line.put("queueOffset", r.getQueueOffset());
            emit(line);
            return true;
        } catch (Throwable t) {
            Map<String, Object> line = event("sendError");
            line.put("index", plan.index);
            line.put("key", plan.key);
            line.put("sentAt", sentAt);
            line.put("error", describe(t));
            emit(line);
            return false;
        }
    }

    private static void loadSpec(String topic, String file, List<Message> msgs, List<Plan> plans,
                                 Map<String, Plan> byKey) throws Exception {
        String text = new String(Files.readAllBytes(Paths.get(file)), StandardCharsets.UTF_8);
        JSONArray spec = JSON.parseArray(text);
        for (int i = 0; i < spec.size(); i++) {
            JSONObject m = spec.getJSONObject(i);
            Message msg = new Message(topic, Base64.getDecoder().decode(m.getString("body")));
            if (m.getString("tags") != null) {
                msg.setTags(m.getString("tags"));
            }
            JSONArray keys = m.getJSONArray("keys");
            List<String> ks = new ArrayList<>();
            if (keys != null) {
                for (int k = 0; k < keys.size(); k++) {
                    ks.add(keys.getString(k));
                }
            }
            if (ks.isEmpty()) {
                throw new IllegalArgumentException("message " + i + " needs a key (it identifies the plan)");
            }
            msg.setKeys(ks);
            JSONObject props = m.getJSONObject("props");
            if (props != null) {
                for (Map.Entry<String, Object> e : props.entrySet()) {
                    msg.putUserProperty(e.getKey(), String.valueOf(e.getValue()));
                }
            }
            if (m.containsKey("immunitySeconds")) {
                // A system property: putUserProperty refuses it, so set it the way the client itself would.
                MessageAccessor.putProperty(msg, MessageConst.PROPERTY_CHECK_IMMUNITY_TIME_IN_SECONDS,
                    String.valueOf(m.getIntValue("immunitySeconds")));
            }
            Plan plan = new Plan();
            plan.index = i;
            plan.key = ks.get(0);
            plan.checkOnly = m.getBooleanValue("checkOnly");
            plan.localDelayMs = m.getLongValue("localDelayMs");
            plan.local = m.getString("local") == null ? "COMMIT_MESSAGE" : m.getString("local");
            if (!"BLOCK".equals(plan.local)) {
                LocalTransactionState.valueOf(plan.local);  // fail early on a typo
            }
            JSONArray checks = m.getJSONArray("checks");
            if (checks != null) {
                for (int c = 0; c < checks.size(); c++) {
                    plan.checks.add(LocalTransactionState.valueOf(checks.getString(c)).name());
                }
            }
            msgs.add(msg);
            plans.add(plan);
            byKey.put(plan.key, plan);
        }
    }

    private static String firstKey(String keys) {
        if (keys == null) {
            return null;
        }
        for (String k : keys.split(MessageConst.KEY_SEPARATOR)) {
            if (!k.isEmpty()) {
                return k;
            }
        }
        return null;
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

    // ------------------------------------------------------------------ output

    private static Map<String, Object> event(String name) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("event", name);
        m.put("at", System.currentTimeMillis());
        return m;
    }

    private static void emit(Map<String, Object> obj) {
        String text = JSON.toJSONString(obj);
        synchronized (TxDriver.class) {
            out.println(text);
            out.flush();
        }
    }
}
