package pocketmq.compat;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import com.alibaba.fastjson.JSON;
import com.alibaba.fastjson.JSONArray;
import com.alibaba.fastjson.JSONObject;
import com.alibaba.fastjson.serializer.SerializerFeature;

import org.apache.rocketmq.client.QueryResult;
import org.apache.rocketmq.client.consumer.DefaultLitePullConsumer;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.MessageSelector;
import org.apache.rocketmq.client.consumer.PullResult;
import org.apache.rocketmq.client.consumer.PullStatus;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.exception.MQClientException;
import org.apache.rocketmq.client.exception.RequestTimeoutException;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.RequestCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.client.utils.MessageUtil;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageClientExt;
import org.apache.rocketmq.common.message.MessageConst;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.common.message.MessageQueue;

/**
 * Feature scenarios for the stock RocketMQ Java client (remoting), compiled unchanged against 4.9.8 and 5.3.3; used
 * by compat_tests/test_java_features.py through compat_tests/java_features.py.
 *
 * <pre>
 * FeatureDriver sql-consume --sql EXPR                push consumer, MessageSelector.bySql, until "stop" on stdin
 * FeatureDriver respond                               push consumer answering each request with
 *                                                     MessageUtil.createReplyMessage, until "stop"
 * FeatureDriver request --spec FILE --timeout-ms MS   DefaultMQProducer.request, sync and with a RequestCallback
 * FeatureDriver lite-pull --mode subscribe|assign [--drain N] [--seek Q:OFFSET,...] --expect N --timeout S
 *                   [--linger-ms MS]   (assign: poll N messages, then seek, then the N expected ones)
 * FeatureDriver pull [--max-nums K]                   DefaultMQPullConsumer: every queue from the committed offset
 *                                                     until NO_NEW_MSG, then commits
 * FeatureDriver query [--keys K,...] [--offset-ids ID,...] [--msg-ids ID,...] [--begin MS] [--end MS]
 * FeatureDriver no-server --send-timeout-ms MS        a producer whose name server does not answer
 * every command: --namesrv ADDR --topic T --group G [--log-dir DIR] [--log-level LEVEL]
 * </pre>
 *
 * stdout carries only JSON lines (fastjson, which both client versions depend on); every event has "at" (ms). A
 * received message is printed as one line with "msgId" (and no "event"). The request spec FILE is a JSON list of
 * {"body": base64, "tags", "keys", "props", "mode": "sync"|"async", "topic" and "timeoutMs" (optional: other than
 * --topic / --timeout-ms)}: sync requests are made one after another, then all async ones at once. Methods only some
 * versions have are called by reflection.
 */
@SuppressWarnings("deprecation")  // DefaultMQPullConsumer, queryMessage, viewMessage: the APIs under test
public final class FeatureDriver {
    private static PrintStream out;
    private static final CountDownLatch STOP = new CountDownLatch(1);

    private FeatureDriver() {
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        if (args.length < 1) {
            usage("missing command");
        }
        Map<String, String> opts = parseOptions(args);
        configureLogging(opts);
        watchStdin();
        if ("no-server".equals(args[0])) {
            try {
                noServer(opts);
            } catch (Throwable t) {
                emit(errorEvent("fatal", t));
                System.exit(1);
            }
            // No System.exit: the JVM ends only if the client left no thread running after shutdown.
            out.flush();
            return;
        }
        int rc;
        try {
            rc = run(args[0], opts);
        } catch (Throwable t) {
            // Without this the client's non-daemon threads would keep the JVM alive.
            emit(errorEvent("fatal", t));
            t.printStackTrace();
            rc = 1;
        }
        out.flush();
        System.exit(rc);
    }

    private static int run(String command, Map<String, String> opts) throws Exception {
        int rc;
        switch (command) {
            case "sql-consume":
                rc = sqlConsume(opts);
                break;
            case "respond":
                rc = respond(opts);
                break;
            case "request":
                rc = request(opts);
                break;
            case "lite-pull":
                rc = litePull(opts);
                break;
            case "pull":
                rc = pull(opts);
                break;
            case "query":
                rc = query(opts);
                break;
            default:
                usage("unknown command " + command);
                rc = 2;
        }
        return rc;
    }

    // ------------------------------------------------------------------ options, logging, stdin

    private static void usage(String why) {
        System.err.println("usage error: " + why);
        System.err.println("FeatureDriver sql-consume|respond|request|lite-pull|pull|query|no-server --namesrv ADDR ...");
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

    /** "stop" on stdin (or its end) releases {@link #STOP}. */
    private static void watchStdin() {
        Thread t = new Thread(() -> {
            try (BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if ("stop".equals(line.trim())) {
                        break;
                    }
                }
            } catch (Exception ignored) {
                // stdin closed: stop as well
            }
            STOP.countDown();
        }, "stdin-watch");
        t.setDaemon(true);
        t.start();
    }

    private static String instanceName(String role) {
        return "pmq-" + role + "-" + ManagementFactory.getRuntimeMXBean().getName().replace('@', '-') + "-"
            + System.nanoTime();
    }

    private static DefaultMQProducer producer(Map<String, String> opts, String group) {
        DefaultMQProducer p = new DefaultMQProducer(group);
        p.setNamesrvAddr(req(opts, "namesrv"));
        p.setInstanceName(instanceName("producer"));
        p.setVipChannelEnabled(false);
        return p;
    }

    private static DefaultMQPushConsumer pushConsumer(Map<String, String> opts) {
        DefaultMQPushConsumer c = new DefaultMQPushConsumer(req(opts, "group"));
        c.setNamesrvAddr(req(opts, "namesrv"));
        c.setInstanceName(instanceName("consumer"));
        c.setVipChannelEnabled(false);
        c.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        return c;
    }

    // ------------------------------------------------------------------ sql-consume

    private static int sqlConsume(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        String sql = req(opts, "sql");
        DefaultMQPushConsumer consumer = pushConsumer(opts);
        consumer.subscribe(topic, MessageSelector.bySql(sql));
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            long receivedAt = System.currentTimeMillis();
            for (MessageExt m : msgs) {
                Map<String, Object> line = messageLine(m);
                line.put("receivedAt", receivedAt);
                emit(line);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        long startAt = System.currentTimeMillis();
        try {
            consumer.start();
        } catch (MQClientException e) {
            // The client asks the broker (CHECK_CLIENT_CONFIG) whether it can filter with this expression.
            Map<String, Object> line = errorEvent("startError", e);
            line.put("elapsedMs", System.currentTimeMillis() - startAt);
            emit(line);
            consumer.shutdown();
            emit(event("done"));
            return 0;
        }
        emit(event("ready"));
        STOP.await();
        emit(event("stopping"));
        consumer.shutdown();
        emit(event("done"));
        return 0;
    }

    // ------------------------------------------------------------------ request-reply

    private static int respond(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        String group = req(opts, "group");
        String name = instanceName("responder");
        DefaultMQProducer replier = producer(opts, group + "-replier");
        replier.start();
        DefaultMQPushConsumer consumer = pushConsumer(opts);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, ctx) -> {
            for (MessageExt m : msgs) {
                Map<String, Object> line = event("request");
                line.put("request", messageLine(m));
                emit(line);
                Map<String, Object> done = event("replied");
                done.put("requestMsgId", m.getMsgId());
                try {
                    byte[] prefix = "reply:".getBytes(StandardCharsets.UTF_8);
                    byte[] body = new byte[prefix.length + m.getBody().length];
                    System.arraycopy(prefix, 0, body, 0, prefix.length);
                    System.arraycopy(m.getBody(), 0, body, prefix.length, m.getBody().length);
                    Message reply = MessageUtil.createReplyMessage(m, body);
                    for (Map.Entry<String, String> e : userProps(m).entrySet()) {
                        reply.putUserProperty("echo-" + e.getKey(), e.getValue());
                    }
                    reply.putUserProperty("pmqResponder", name);
                    SendResult r = replier.send(reply);
                    done.put("replyTopic", reply.getTopic());
                    done.put("status", String.valueOf(r.getSendStatus()));
                } catch (Exception e) {
                    done.put("error", describe(e));
                }
                emit(done);
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });
        consumer.start();
        emit(event("ready"));
        STOP.await();
        emit(event("stopping"));
        consumer.shutdown();
        replier.shutdown();
        emit(event("done"));
        return 0;
    }

    private static int request(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        long defaultTimeoutMs = Long.parseLong(req(opts, "timeout-ms"));
        String text = new String(Files.readAllBytes(Paths.get(req(opts, "spec"))), StandardCharsets.UTF_8);
        JSONArray spec = JSON.parseArray(text);
        DefaultMQProducer producer = producer(opts, req(opts, "group"));
        producer.start();
        emit(event("started"));

        List<Integer> async = new ArrayList<>();
        long maxTimeoutMs = 0;
        for (int i = 0; i < spec.size(); i++) {
            JSONObject item = spec.getJSONObject(i);
            long timeoutMs = item.containsKey("timeoutMs") ? item.getLongValue("timeoutMs") : defaultTimeoutMs;
            maxTimeoutMs = Math.max(maxTimeoutMs, timeoutMs);
            if ("async".equals(item.getString("mode"))) {
                async.add(i);
                continue;
            }
            Message msg = toMessage(item.getString("topic") != null ? item.getString("topic") : topic, item);
            long sentAt = System.currentTimeMillis();
            try {
                Message reply = producer.request(msg, timeoutMs);
                emit(replyLine(i, "sync", msg, reply, sentAt));
            } catch (Exception e) {
                emit(requestError(i, "sync", msg, e, sentAt));
            }
        }

        CountDownLatch pending = new CountDownLatch(async.size());
        for (int i : async) {
            JSONObject item = spec.getJSONObject(i);
            long timeoutMs = item.containsKey("timeoutMs") ? item.getLongValue("timeoutMs") : defaultTimeoutMs;
            Message msg = toMessage(item.getString("topic") != null ? item.getString("topic") : topic, item);
            long sentAt = System.currentTimeMillis();
            try {
                producer.request(msg, new RequestCallback() {
                    @Override
                    public void onSuccess(Message reply) {
                        emit(replyLine(i, "async", msg, reply, sentAt));
                        pending.countDown();
                    }

                    @Override
                    public void onException(Throwable e) {
                        emit(requestError(i, "async", msg, e, sentAt));
                        pending.countDown();
                    }
                }, timeoutMs);
            } catch (Exception e) {
                emit(requestError(i, "async", msg, e, sentAt));
                pending.countDown();
            }
        }
        pending.await(maxTimeoutMs + 10_000, TimeUnit.MILLISECONDS);
        producer.shutdown();
        emit(event("done"));
        return 0;
    }

    private static Map<String, Object> replyLine(int index, String mode, Message request, Message reply, long sentAt) {
        Map<String, Object> line = event("reply");
        line.put("index", index);
        line.put("mode", mode);
        line.put("correlationId", request.getProperty(MessageConst.PROPERTY_CORRELATION_ID));
        line.put("requestProps", allProps(request));
        line.put("rttMs", System.currentTimeMillis() - sentAt);
        line.put("reply", reply instanceof MessageExt ? messageLine((MessageExt) reply) : plainLine(reply));
        return line;
    }

    private static Map<String, Object> requestError(int index, String mode, Message request, Throwable e, long sentAt) {
        Map<String, Object> line = errorEvent("requestError", e);
        line.put("index", index);
        line.put("mode", mode);
        line.put("correlationId", request.getProperty(MessageConst.PROPERTY_CORRELATION_ID));
        line.put("elapsedMs", System.currentTimeMillis() - sentAt);
        return line;
    }

    // ------------------------------------------------------------------ lite pull, pull

    private static int litePull(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        String mode = req(opts, "mode");
        int expect = Integer.parseInt(req(opts, "expect"));
        long deadline = System.currentTimeMillis() + (long) (Double.parseDouble(req(opts, "timeout")) * 1000);
        long lingerMs = Long.parseLong(opts.getOrDefault("linger-ms", "0"));

        DefaultLitePullConsumer consumer = new DefaultLitePullConsumer(req(opts, "group"));
        consumer.setNamesrvAddr(req(opts, "namesrv"));
        consumer.setInstanceName(instanceName("lite"));
        consumer.setVipChannelEnabled(false);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        if ("subscribe".equals(mode)) {
            consumer.subscribe(topic, "*");
            consumer.start();
        } else if ("assign".equals(mode)) {
            consumer.start();
            List<MessageQueue> mqs = sorted(consumer.fetchMessageQueues(topic));
            consumer.assign(mqs);
            // Read the queues to their end before seeking back: seek() racing a pull that has just found messages
            // can let that stale pull's messages through (PullTaskImpl re-checks neither its cancellation nor the
            // seek under the queue lock once the new task has taken the seek offset): a client-side race.
            int drain = Integer.parseInt(opts.getOrDefault("drain", "0"));
            Set<String> drained = new HashSet<>();
            while (drained.size() < drain && System.currentTimeMillis() < deadline) {
                for (MessageExt m : consumer.poll(500)) {
                    Map<String, Object> line = messageLine(m);
                    line.put("event", "drained");
                    emit(line);
                    drained.add(Base64.getEncoder().encodeToString(m.getBody()));
                }
            }
            for (String item : opts.getOrDefault("seek", "").split(",")) {
                if (item.isEmpty()) {
                    continue;
                }
                String[] qo = item.split(":");
                seek(consumer, queue(mqs, Integer.parseInt(qo[0])), Long.parseLong(qo[1]));
            }
        } else {
            usage("unknown mode " + mode);
        }
        emit(event("ready"));
        Set<String> bodies = new HashSet<>();
        long lingerUntil = Long.MAX_VALUE;
        while (true) {
            long now = System.currentTimeMillis();
            if (now >= Math.min(deadline, lingerUntil)) {
                break;
            }
            for (MessageExt m : consumer.poll(Math.min(500, Math.min(deadline, lingerUntil) - now))) {
                Map<String, Object> line = messageLine(m);
                line.put("receivedAt", System.currentTimeMillis());
                emit(line);
                bodies.add(Base64.getEncoder().encodeToString(m.getBody()));
            }
            if (bodies.size() >= expect && lingerUntil == Long.MAX_VALUE) {
                lingerUntil = System.currentTimeMillis() + lingerMs;
            }
        }
        consumer.commitSync();
        Map<String, Object> committed = event("committed");
        Map<String, Object> offsets = new TreeMap<>();
        for (MessageQueue mq : sorted(consumer.assignment())) {
            offsets.put(String.valueOf(mq.getQueueId()), consumer.committed(mq));
        }
        committed.put("offsets", offsets);
        committed.put("complete", bodies.size() >= expect);
        emit(committed);
        consumer.shutdown();
        emit(event("done"));
        return 0;
    }

    private static int pull(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        int maxNums = Integer.parseInt(opts.getOrDefault("max-nums", "32"));
        org.apache.rocketmq.client.consumer.DefaultMQPullConsumer consumer =
            new org.apache.rocketmq.client.consumer.DefaultMQPullConsumer(req(opts, "group"));
        consumer.setNamesrvAddr(req(opts, "namesrv"));
        consumer.setInstanceName(instanceName("pull"));
        consumer.setVipChannelEnabled(false);
        consumer.start();
        emit(event("ready"));
        for (MessageQueue mq : sorted(consumer.fetchSubscribeMessageQueues(topic))) {
            long offset = consumer.fetchConsumeOffset(mq, true);
            Map<String, Object> start = event("startOffset");
            start.put("queueId", mq.getQueueId());
            start.put("offset", offset);
            emit(start);
            offset = Math.max(offset, 0);
            while (true) {
                PullResult r = consumer.pull(mq, "*", offset, maxNums);
                Map<String, Object> line = event("pull");
                line.put("queueId", mq.getQueueId());
                line.put("offset", offset);
                line.put("status", String.valueOf(r.getPullStatus()));
                line.put("nextBeginOffset", r.getNextBeginOffset());
                line.put("minOffset", r.getMinOffset());
                line.put("maxOffset", r.getMaxOffset());
                List<Object> found = new ArrayList<>();
                if (r.getMsgFoundList() != null) {
                    for (MessageExt m : r.getMsgFoundList()) {
                        found.add(messageLine(m));
                    }
                }
                line.put("messages", found);
                emit(line);
                if (r.getPullStatus() != PullStatus.FOUND || r.getNextBeginOffset() <= offset) {
                    break;
                }
                offset = r.getNextBeginOffset();
            }
            consumer.updateConsumeOffset(mq, offset);
            // Sent now and synchronously: the scheduled/shutdown persist only covers queues of registered topics.
            consumer.getOffsetStore().updateConsumeOffsetToBroker(mq, offset, false);
            Map<String, Object> committed = event("committed");
            committed.put("queueId", mq.getQueueId());
            committed.put("offset", offset);
            committed.put("stored", consumer.fetchConsumeOffset(mq, true));
            emit(committed);
        }
        consumer.shutdown();
        emit(event("done"));
        return 0;
    }

    /**
     * seek, retried: seek() interrupts the queue's running pull task, and a thread interrupted inside a remoting call
     * makes the client close that broker connection, failing whatever else was in flight on it (such as the
     * max-offset query of the next seek). A client-side race, with any broker.
     */
    private static void seek(DefaultLitePullConsumer consumer, MessageQueue mq, long offset) throws Exception {
        for (int attempt = 1; ; attempt++) {
            try {
                consumer.seek(mq, offset);
                return;
            } catch (MQClientException e) {
                if (attempt >= 5) {
                    throw e;
                }
                Map<String, Object> line = errorEvent("seekRetry", e);
                line.put("queueId", mq.getQueueId());
                emit(line);
                Thread.sleep(200);
            }
        }
    }

    private static List<MessageQueue> sorted(Collection<MessageQueue> mqs) {
        List<MessageQueue> list = new ArrayList<>(mqs);
        list.sort(Comparator.comparing(MessageQueue::getBrokerName).thenComparingInt(MessageQueue::getQueueId));
        return list;
    }

    private static MessageQueue queue(List<MessageQueue> mqs, int queueId) {
        for (MessageQueue mq : mqs) {
            if (mq.getQueueId() == queueId) {
                return mq;
            }
        }
        throw new IllegalArgumentException("no queue " + queueId + " in " + mqs);
    }

    // ------------------------------------------------------------------ query

    private static int query(Map<String, String> opts) throws Exception {
        String topic = req(opts, "topic");
        long begin = Long.parseLong(opts.getOrDefault("begin", "0"));
        long end = Long.parseLong(opts.getOrDefault("end", String.valueOf(Long.MAX_VALUE)));
        int max = Integer.parseInt(opts.getOrDefault("max", "32"));
        DefaultMQProducer producer = producer(opts, req(opts, "group"));
        producer.start();
        emit(event("started"));
        for (String key : list(opts.get("keys"))) {
            try {
                QueryResult qr = producer.queryMessage(topic, key, max, begin, end);
                Map<String, Object> line = event("query");
                line.put("key", key);
                List<Object> found = new ArrayList<>();
                for (MessageExt m : qr.getMessageList()) {
                    found.add(messageLine(m));
                }
                line.put("messages", found);
                emit(line);
            } catch (Exception e) {
                Map<String, Object> line = errorEvent("queryError", e);
                line.put("key", key);
                emit(line);
            }
        }
        for (String id : list(opts.get("offset-ids"))) {
            emit(view("offsetMsgId", id, () -> viewByOffsetId(producer, topic, id)));
        }
        for (String id : list(opts.get("msg-ids"))) {
            emit(view("msgId", id, () -> producer.viewMessage(topic, id)));
        }
        producer.shutdown();
        emit(event("done"));
        return 0;
    }

    private interface Viewer {
        MessageExt view() throws Exception;
    }

    private static Map<String, Object> view(String by, String id, Viewer viewer) {
        try {
            MessageExt m = viewer.view();
            Map<String, Object> line = event("view");
            line.put("by", by);
            line.put("id", id);
            line.put("message", m == null ? null : messageLine(m));
            return line;
        } catch (Exception e) {
            Map<String, Object> line = errorEvent("viewError", e);
            line.put("by", by);
            line.put("id", id);
            return line;
        }
    }

    /**
     * VIEW_MESSAGE_BY_ID only: DefaultMQProducerImpl.viewMessage(offsetMsgId) on 4.x, viewMessage(topic,
     * offsetMsgId) on 5.x (the public DefaultMQProducer.viewMessage(topic, id) would fall back to a unique-key query).
     */
    private static MessageExt viewByOffsetId(DefaultMQProducer producer, String topic, String id) throws Exception {
        Object impl = producer.getDefaultMQProducerImpl();
        try {
            try {
                Method m = impl.getClass().getMethod("viewMessage", String.class);
                return (MessageExt) m.invoke(impl, id);
            } catch (NoSuchMethodException e) {
                Method m = impl.getClass().getMethod("viewMessage", String.class, String.class);
                return (MessageExt) m.invoke(impl, topic, id);
            }
        } catch (InvocationTargetException e) {
            throw e.getCause() instanceof Exception ? (Exception) e.getCause() : e;
        }
    }

    private static List<String> list(String csv) {
        List<String> items = new ArrayList<>();
        if (csv != null) {
            for (String s : csv.split(",")) {
                if (!s.isEmpty()) {
                    items.add(s);
                }
            }
        }
        return items;
    }

    // ------------------------------------------------------------------ no server

    private static void noServer(Map<String, String> opts) throws Exception {
        DefaultMQProducer producer = producer(opts, req(opts, "group"));
        producer.setSendMsgTimeout(Integer.parseInt(req(opts, "send-timeout-ms")));
        long t0 = System.currentTimeMillis();
        producer.start();
        Map<String, Object> started = event("started");
        started.put("elapsedMs", System.currentTimeMillis() - t0);
        emit(started);
        Message msg = new Message(req(opts, "topic"), "never stored".getBytes(StandardCharsets.UTF_8));
        long sentAt = System.currentTimeMillis();
        try {
            SendResult r = producer.send(msg);
            Map<String, Object> line = event("sent");
            line.put("status", String.valueOf(r.getSendStatus()));
            emit(line);
        } catch (Exception e) {
            Map<String, Object> line = errorEvent("sendError", e);
            line.put("elapsedMs", System.currentTimeMillis() - sentAt);
            emit(line);
        }
        producer.shutdown();
        emit(event("done"));
    }

    // ------------------------------------------------------------------ messages, output

    private static Message toMessage(String topic, JSONObject m) {
        Message msg = new Message(topic, Base64.getDecoder().decode(m.getString("body")));
        if (m.getString("tags") != null) {
            msg.setTags(m.getString("tags"));
        }
        JSONArray keys = m.getJSONArray("keys");
        if (keys != null && !keys.isEmpty()) {
            List<String> ks = new ArrayList<>();
            for (int i = 0; i < keys.size(); i++) {
                ks.add(keys.getString(i));
            }
            msg.setKeys(ks);
        }
        JSONObject props = m.getJSONObject("props");
        if (props != null) {
            for (String k : props.keySet()) {
                msg.putUserProperty(k, props.getString(k));
            }
        }
        return msg;
    }

    private static Map<String, String> allProps(Message m) {
        return m.getProperties() == null ? new TreeMap<>() : new TreeMap<>(m.getProperties());
    }

    private static Map<String, String> userProps(Message m) {
        Map<String, String> user = new TreeMap<>();
        for (Map.Entry<String, String> e : allProps(m).entrySet()) {
            if (!MessageConst.STRING_HASH_SET.contains(e.getKey())) {
                user.put(e.getKey(), e.getValue());
            }
        }
        return user;
    }

    private static List<String> keys(Message m) {
        List<String> keys = new ArrayList<>();
        if (m.getKeys() != null) {
            for (String k : m.getKeys().split(MessageConst.KEY_SEPARATOR)) {
                if (!k.isEmpty()) {
                    keys.add(k);
                }
            }
        }
        return keys;
    }

    private static Map<String, Object> plainLine(Message m) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("topic", m.getTopic());
        line.put("tags", m.getTags());
        line.put("keys", keys(m));
        line.put("body", m.getBody() == null ? null : Base64.getEncoder().encodeToString(m.getBody()));
        line.put("props", userProps(m));
        line.put("allProps", allProps(m));
        return line;
    }

    private static Map<String, Object> messageLine(MessageExt m) {
        Map<String, Object> line = plainLine(m);
        line.put("msgId", m.getMsgId());
        line.put("offsetMsgId", m instanceof MessageClientExt ? ((MessageClientExt) m).getOffsetMsgId() : null);
        line.put("queueId", m.getQueueId());
        line.put("queueOffset", m.getQueueOffset());
        line.put("reconsumeTimes", m.getReconsumeTimes());
        line.put("bornTimestamp", m.getBornTimestamp());
        line.put("storeTimestamp", m.getStoreTimestamp());
        return line;
    }

    private static Map<String, Object> errorEvent(String name, Throwable e) {
        Map<String, Object> line = event(name);
        line.put("class", e.getClass().getName());
        if (e instanceof MQClientException) {
            line.put("responseCode", ((MQClientException) e).getResponseCode());
            line.put("errorMessage", ((MQClientException) e).getErrorMessage());
        } else if (e instanceof RequestTimeoutException) {
            line.put("responseCode", ((RequestTimeoutException) e).getResponseCode());
            line.put("errorMessage", ((RequestTimeoutException) e).getErrorMessage());
        }
        line.put("error", describe(e));
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

    private static Map<String, Object> event(String name) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("event", name);
        m.put("at", System.currentTimeMillis());
        return m;
    }

    private static void emit(Map<String, Object> obj) {
        String text = JSON.toJSONString(obj, SerializerFeature.WriteMapNullValue);
        synchronized (FeatureDriver.class) {
            out.println(text);
            out.flush();
        }
    }
}
