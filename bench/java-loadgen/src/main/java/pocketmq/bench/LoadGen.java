package pocketmq.bench;

import java.io.FileDescriptor;
import java.io.IOException;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonWriter;
import org.apache.rocketmq.client.consumer.DefaultMQPushConsumer;
import org.apache.rocketmq.client.consumer.listener.ConsumeConcurrentlyStatus;
import org.apache.rocketmq.client.consumer.listener.MessageListenerConcurrently;
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendCallback;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.consumer.ConsumeFromWhere;
import org.apache.rocketmq.common.message.Message;
import org.apache.rocketmq.common.message.MessageExt;
import org.apache.rocketmq.remoting.protocol.heartbeat.MessageModel;

/**
 * Load generator for bench/compare.py: the stock RocketMQ Java client (5.3.3, remoting) putting the same load on
 * pocketmq and on the Apache broker.
 *
 * <pre>
 * LoadGen sync  --namesrv ADDR --topic T [--threads 16] [--seconds 15] [--warmup 3]
 * LoadGen async --namesrv ADDR --topic T [--inflight 512] [--seconds 15] [--warmup 3]
 * LoadGen batch --namesrv ADDR --topic T [--threads 8] [--batch 64] [--seconds 15] [--warmup 3]
 * LoadGen fill  --namesrv ADDR --topic T [--messages 500000] [--batch 64] [--threads 8] [--timeout 900]
 * LoadGen drain --namesrv ADDR --topic T --messages M [--group G] [--timeout 900] [--linger-ms 1000]
 *   common: [--body 1024] [--group G] [--send-timeout-ms 10000] [--max-sends 20000000] [--log-dir DIR]
 * </pre>
 *
 * <p>sync, async and batch share one {@code DefaultMQProducer} between their threads (as Apache's own benchmark
 * does). Each runs for warm-up + seconds; a send belongs to the timed window when it <em>completes</em> inside
 * [start + warmup, start + warmup + seconds), which is decided after the run from recorded completion times, so the
 * window is exact. fill sends M messages in batches as fast as it can; drain consumes them with one
 * {@code DefaultMQPushConsumer} (clustering, CONSUME_FROM_FIRST_OFFSET, a fresh group) and counts distinct
 * (queue, queue offset) pairs until all M arrived.
 *
 * <p>stdout carries only JSON lines: {@code {"event":"window_start"}} and {@code {"event":"window_end"}} at the
 * edges of the timed window (so the caller can sample the server's CPU over exactly that window), then one result
 * object ({@code "result": phase}). Everything else, including the client's own output, goes to stderr. Every loop
 * is bounded by time and by count.
 */
public final class LoadGen {
    private static final long MAX_SENDS_DEFAULT = 20_000_000L;
    private static PrintStream out;

    private LoadGen() {
    }

    public static void main(String[] args) throws Exception {
        out = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        if (args.length < 1) {
            usage("missing phase");
        }
        Opts o = new Opts(args);
        configureLogging(o);
        int rc;
        try {
            switch (args[0]) {
                case "sync":
                    rc = sync(o);
                    break;
                case "async":
                    rc = async(o);
                    break;
                case "batch":
                    rc = batch(o);
                    break;
                case "fill":
                    rc = fill(o);
                    break;
                case "drain":
                    rc = drain(o);
                    break;
                default:
                    usage("unknown phase " + args[0]);
                    rc = 2;
            }
        } catch (Throwable t) {
            t.printStackTrace();
            Map<String, Object> line = new LinkedHashMap<>();
            line.put("event", "fatal");
            line.put("error", describe(t));
            emit(line);
            rc = 1;
        }
        out.flush();
        System.exit(rc);
    }

    // ------------------------------------------------------------------ options, output, logging

    private static void usage(String why) {
        System.err.println("usage error: " + why);
        System.err.println("LoadGen sync|async|batch|fill|drain --namesrv ADDR --topic T ...");
        System.exit(2);
    }

    /** {@code --name value} pairs after the phase. */
    private static final class Opts {
        private final Map<String, String> values = new HashMap<>();

        Opts(String[] args) {
            for (int i = 1; i < args.length; i += 2) {
                if (!args[i].startsWith("--") || i + 1 >= args.length) {
                    usage("bad option " + args[i]);
                }
                values.put(args[i].substring(2), args[i + 1]);
            }
        }

        String str(String name, String def) {
            return values.getOrDefault(name, def);
        }

        String req(String name) {
            String v = values.get(name);
            if (v == null) {
                usage("missing --" + name);
            }
            return v;
        }

        int integer(String name, int def) {
            return values.containsKey(name) ? Integer.parseInt(values.get(name)) : def;
        }

        long lng(String name, long def) {
            return values.containsKey(name) ? Long.parseLong(values.get(name)) : def;
        }

        double dbl(String name, double def) {
            return values.containsKey(name) ? Double.parseDouble(values.get(name)) : def;
        }
    }

    private static void configureLogging(Opts o) {
        String dir = o.str("log-dir", Paths.get(System.getProperty("java.io.tmpdir"), "pocketmq-loadgen-logs").toString());
        String level = o.str("log-level", "WARN");
        // 5.x client: shaded logback configured by rmq.client.logback.xml.
        setDefault("rocketmq.log.root", dir);
        setDefault("rocketmq.log.level", level);
        setDefault("mq.consoleAppender.enabled", "false");
        // 4.x-style keys, harmless on 5.x.
        setDefault("rocketmq.client.logUseSlf4j", "false");
        setDefault("rocketmq.client.logRoot", dir);
        setDefault("rocketmq.client.logLevel", level);
    }

    private static void setDefault(String key, String value) {
        if (System.getProperty(key) == null) {
            System.setProperty(key, value);
        }
    }

    /** One JSON object per line; a non-finite double is written as null (a rate over an empty window). */
    private static final Gson JSON = new GsonBuilder()
            .serializeNulls()
            .disableHtmlEscaping()
            .registerTypeAdapter(Double.class, new TypeAdapter<Double>() {
                @Override
                public void write(JsonWriter w, Double d) throws IOException {
                    if (d == null || !Double.isFinite(d)) {
                        w.nullValue();
                    } else {
                        w.value(d);
                    }
                }

                @Override
                public Double read(JsonReader r) {
                    throw new UnsupportedOperationException("LoadGen only writes JSON");
                }
            })
            .create();

    private static void emit(Map<String, Object> line) {
        String text = JSON.toJson(line);
        synchronized (LoadGen.class) {
            out.println(text);
            out.flush();
        }
    }

    private static void event(String name) {
        Map<String, Object> line = new LinkedHashMap<>();
        line.put("event", name);
        emit(line);
    }

    private static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        for (Throwable c = t; c != null; c = c.getCause()) {
            if (sb.length() > 0) {
                sb.append(" <- ");
            }
            sb.append(c.getClass().getSimpleName()).append(": ").append(c.getMessage());
            if (c.getCause() == c || sb.length() > 400) {
                break;
            }
        }
        return sb.length() > 400 ? sb.substring(0, 400) : sb.toString();
    }

    /** The first line of an error, shortened: errors are counted by kind. */
    private static String kind(Throwable t) {
        String text = t.getClass().getSimpleName() + ": " + t.getMessage();
        int nl = text.indexOf('\n');
        if (nl >= 0) {
            text = text.substring(0, nl);
        }
        return text.length() > 160 ? text.substring(0, 160) : text;
    }

    private static String instanceName(String role) {
        return "bench-" + role + "-" + ManagementFactory.getRuntimeMXBean().getName().replace('@', '-') + "-"
            + System.nanoTime();
    }

    private static void sleepMillis(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static void sleepUntil(long nanoTime) {
        long left;
        while ((left = nanoTime - System.nanoTime()) > 0) {
            LockSupport.parkNanos(left);
        }
    }

    private static double seconds(long nanos) {
        return nanos / 1e9;
    }

    private static long nanos(double seconds) {
        return (long) (seconds * 1e9);
    }

    // ------------------------------------------------------------------ messages, producer

    private static byte[] body(Opts o) {
        byte[] b = new byte[o.integer("body", 1024)];
        new Random(42).nextBytes(b);
        return b;
    }

    /** A fresh Message each time: the client stamps each one with its own UNIQ_KEY. */
    private static Message message(String topic, byte[] body) {
        return new Message(topic, "TagA", body);
    }

    private static List<Message> messages(String topic, byte[] body, int n) {
        List<Message> list = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            list.add(message(topic, body));
        }
        return list;
    }

    private static DefaultMQProducer producer(Opts o, String phase) throws Exception {
        DefaultMQProducer p = new DefaultMQProducer(o.str("group", "bench_" + phase));
        p.setNamesrvAddr(o.req("namesrv"));
        p.setInstanceName(instanceName(phase));
        p.setVipChannelEnabled(false);
        p.setSendMsgTimeout(o.integer("send-timeout-ms", 10_000));
        p.start();
        return p;
    }

    // ------------------------------------------------------------------ recording

    /** Completion times and latencies of sends (one instance per thread, or guarded by the caller). */
    private static final class Samples {
        long[] done = new long[4096];
        long[] lat = new long[4096];
        int n;
        long[] errDone = new long[16];
        int errN;
        final Map<String, Integer> errKinds = new TreeMap<>();
        final Map<String, Integer> statuses = new TreeMap<>();

        void ok(long doneNs, long latNs, String status) {
            if (n == done.length) {
                done = Arrays.copyOf(done, n * 2);
                lat = Arrays.copyOf(lat, n * 2);
            }
            done[n] = doneNs;
            lat[n] = latNs;
            n++;
            statuses.merge(status, 1, Integer::sum);
        }

        void error(long doneNs, Throwable t) {
            if (errN == errDone.length) {
                errDone = Arrays.copyOf(errDone, errN * 2);
            }
            errDone[errN++] = doneNs;
            errKinds.merge(kind(t), 1, Integer::sum);
        }

        void addAll(Samples o) {
            for (int i = 0; i < o.n; i++) {
                if (n == done.length) {
                    done = Arrays.copyOf(done, n * 2);
                    lat = Arrays.copyOf(lat, n * 2);
                }
                done[n] = o.done[i];
                lat[n] = o.lat[i];
                n++;
            }
            for (int i = 0; i < o.errN; i++) {
                if (errN == errDone.length) {
                    errDone = Arrays.copyOf(errDone, errN * 2);
                }
                errDone[errN++] = o.errDone[i];
            }
            o.errKinds.forEach((k, v) -> errKinds.merge(k, v, Integer::sum));
            o.statuses.forEach((k, v) -> statuses.merge(k, v, Integer::sum));
        }
    }

    private static double percentileMs(long[] sorted, int count, double p) {
        if (count == 0) {
            return Double.NaN;
        }
        int k = (int) Math.ceil(p / 100.0 * count) - 1;
        k = Math.max(0, Math.min(count - 1, k));
        return sorted[k] / 1e6;
    }

    /** Latency percentiles of the first {@code count} entries of {@code lat} (sorted in place). */
    private static void latencies(Map<String, Object> r, long[] lat, int count) {
        Arrays.sort(lat, 0, count);
        double sum = 0;
        for (int i = 0; i < count; i++) {
            sum += lat[i];
        }
        r.put("p50_ms", percentileMs(lat, count, 50));
        r.put("p90_ms", percentileMs(lat, count, 90));
        r.put("p99_ms", percentileMs(lat, count, 99));
        r.put("max_ms", count == 0 ? Double.NaN : lat[count - 1] / 1e6);
        r.put("mean_ms", count == 0 ? Double.NaN : sum / count / 1e6);
    }

    /** The result of a timed phase: sends completed in [t0, t1) count, warm-up ones are reported apart. */
    private static Map<String, Object> summary(String phase, Samples s, long loadStart, long t0, long t1, int perSend) {
        long[] inWindow = new long[s.n];
        int w = 0;
        int warm = 0;
        int after = 0;
        for (int i = 0; i < s.n; i++) {
            long d = s.done[i];
            if (d < t0) {
                warm++;
            } else if (d < t1) {
                inWindow[w++] = s.lat[i];
            } else {
                after++;
            }
        }
        int errWindow = 0;
        for (int i = 0; i < s.errN; i++) {
            if (s.errDone[i] >= t0 && s.errDone[i] < t1) {
                errWindow++;
            }
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("result", phase);
        r.put("window_s", seconds(t1 - t0));
        r.put("sends", w);
        r.put("msgs", (long) w * perSend);
        r.put("msgs_per_s", (double) w * perSend / seconds(t1 - t0));
        r.put("warmup_s", seconds(t0 - loadStart));
        r.put("warmup_msgs", (long) warm * perSend);
        r.put("warmup_msgs_per_s", t0 > loadStart ? (double) warm * perSend / seconds(t0 - loadStart) : Double.NaN);
        r.put("after_window_msgs", (long) after * perSend);
        latencies(r, inWindow, w);
        r.put("errors", errWindow);
        r.put("errors_total", s.errN);
        r.put("error_kinds", new LinkedHashMap<String, Object>(s.errKinds));
        r.put("statuses", new LinkedHashMap<String, Object>(s.statuses));
        return r;
    }

    /** A thread that prints the window edges at t0 and t1. */
    private static Thread windowMarker(long t0, long t1) {
        Thread t = new Thread(() -> {
            sleepUntil(t0);
            event("window_start");
            sleepUntil(t1);
            event("window_end");
        }, "window-marker");
        t.setDaemon(true);
        t.start();
        return t;
    }

    // ------------------------------------------------------------------ sync, batch: threads sharing one producer

    private static int sync(Opts o) throws Exception {
        DefaultMQProducer producer = producer(o, "sync");
        String topic = o.req("topic");
        byte[] body = body(o);
        try {
            return threaded(o, "sync", o.integer("threads", 16), 1, () -> producer.send(message(topic, body)));
        } finally {
            producer.shutdown();
        }
    }

    private static int batch(Opts o) throws Exception {
        DefaultMQProducer producer = producer(o, "batch");
        String topic = o.req("topic");
        byte[] body = body(o);
        int size = o.integer("batch", 64);
        try {
            return threaded(o, "batch", o.integer("threads", 8), size,
                () -> producer.send((Collection<Message>) messages(topic, body, size)));
        } finally {
            producer.shutdown();
        }
    }

    private static int threaded(Opts o, String phase, int threads, int perSend, Callable<SendResult> send)
        throws InterruptedException {
        long warmup = nanos(o.dbl("warmup", 3));
        long window = nanos(o.dbl("seconds", 15));
        AtomicLong budget = new AtomicLong(o.lng("max-sends", MAX_SENDS_DEFAULT));
        Samples[] per = new Samples[threads];
        Thread[] workers = new Thread[threads];
        long loadStart = System.nanoTime();
        long t0 = loadStart + warmup;
        long t1 = t0 + window;
        for (int i = 0; i < threads; i++) {
            Samples s = new Samples();
            per[i] = s;
            workers[i] = new Thread(() -> {
                while (System.nanoTime() < t1 && budget.decrementAndGet() >= 0) {
                    long start = System.nanoTime();
                    try {
                        SendResult r = send.call();
                        long end = System.nanoTime();
                        s.ok(end, end - start, String.valueOf(r.getSendStatus()));
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    } catch (Exception e) {
                        s.error(System.nanoTime(), e);
                        sleepMillis(10); // no busy loop against a server that refuses
                    }
                }
            }, phase + "-" + i);
            workers[i].setDaemon(true);
            workers[i].start();
        }
        windowMarker(t0, t1).join();
        long joinDeadline = System.nanoTime() + nanos(o.integer("send-timeout-ms", 10_000) / 1000.0 * 3 + 30);
        int stuck = 0;
        for (Thread t : workers) {
            t.join(Math.max(1, (joinDeadline - System.nanoTime()) / 1_000_000));
            if (t.isAlive()) {
                stuck++;
            }
        }
        Samples all = new Samples();
        for (Samples s : per) {
            synchronized (s) {
                all.addAll(s);
            }
        }
        Map<String, Object> r = summary(phase, all, loadStart, t0, t1, perSend);
        r.put("threads", threads);
        r.put("batch", perSend);
        r.put("stuck_threads", stuck);
        emit(r);
        return 0;
    }

    // ------------------------------------------------------------------ async: one producer, K sends in flight

    private static int async(Opts o) throws Exception {
        DefaultMQProducer producer = producer(o, "async");
        String topic = o.req("topic");
        byte[] body = body(o);
        int inflight = o.integer("inflight", 512);
        long cap = o.lng("max-sends", MAX_SENDS_DEFAULT);
        Semaphore permits = new Semaphore(inflight);
        Samples samples = new Samples();
        long warmup = nanos(o.dbl("warmup", 3));
        long window = nanos(o.dbl("seconds", 15));
        long loadStart = System.nanoTime();
        long t0 = loadStart + warmup;
        long t1 = t0 + window;
        Thread marker = windowMarker(t0, t1);
        long sent = 0;
        try {
            while (System.nanoTime() < t1 && sent < cap) {
                if (!permits.tryAcquire(10, TimeUnit.MILLISECONDS)) {
                    continue;
                }
                sent++;
                long start = System.nanoTime();
                AtomicBoolean finished = new AtomicBoolean();
                try {
                    producer.send(message(topic, body), new SendCallback() {
                        @Override
                        public void onSuccess(SendResult r) {
                            long end = System.nanoTime();
                            if (finished.compareAndSet(false, true)) {
                                synchronized (samples) {
                                    samples.ok(end, end - start, String.valueOf(r.getSendStatus()));
                                }
                                permits.release();
                            }
                        }

                        @Override
                        public void onException(Throwable e) {
                            long end = System.nanoTime();
                            if (finished.compareAndSet(false, true)) {
                                synchronized (samples) {
                                    samples.error(end, e);
                                }
                                permits.release();
                            }
                        }
                    });
                } catch (Exception e) {
                    if (finished.compareAndSet(false, true)) {
                        synchronized (samples) {
                            samples.error(System.nanoTime(), e);
                        }
                        permits.release();
                    }
                    sleepMillis(10);
                }
            }
            marker.join();
            long waitMs = o.integer("send-timeout-ms", 10_000) + 30_000L;
            boolean drained = permits.tryAcquire(inflight, waitMs, TimeUnit.MILLISECONDS);
            Map<String, Object> r;
            synchronized (samples) {
                r = summary("async", samples, loadStart, t0, t1, 1);
            }
            r.put("inflight", inflight);
            r.put("unfinished", drained ? 0 : inflight - permits.availablePermits());
            emit(r);
            return 0;
        } finally {
            producer.shutdown();
        }
    }

    // ------------------------------------------------------------------ fill: M messages in batches, fast

    private static int fill(Opts o) throws Exception {
        DefaultMQProducer producer = producer(o, "fill");
        String topic = o.req("topic");
        byte[] body = body(o);
        long total = o.lng("messages", 500_000);
        int size = o.integer("batch", 64);
        int threads = o.integer("threads", 8);
        long deadline = System.nanoTime() + nanos(o.dbl("timeout", 900));
        AtomicLong next = new AtomicLong();
        Samples[] per = new Samples[threads];
        long[][] perQueueEnd = new long[threads][];
        long[] lost = new long[threads];
        long[] stored = new long[threads];
        Thread[] workers = new Thread[threads];
        event("window_start");
        long start = System.nanoTime();
        for (int i = 0; i < threads; i++) {
            Samples s = new Samples();
            per[i] = s;
            long[] ends = new long[1024];
            Arrays.fill(ends, -1);
            perQueueEnd[i] = ends;
            int index = i;
            workers[i] = new Thread(() -> {
                while (System.nanoTime() < deadline) {
                    long first = next.getAndAdd(size);
                    if (first >= total) {
                        return;
                    }
                    int n = (int) Math.min(size, total - first);
                    List<Message> batch = messages(topic, body, n);
                    long t = System.nanoTime();
                    try {
                        SendResult r = producer.send((Collection<Message>) batch);
                        long end = System.nanoTime();
                        s.ok(end, end - t, String.valueOf(r.getSendStatus()));
                        stored[index] += n;
                        int q = r.getMessageQueue().getQueueId();
                        if (q >= 0 && q < ends.length) {
                            ends[q] = Math.max(ends[q], r.getQueueOffset() + n);
                        }
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return;
                    } catch (Exception e) {
                        s.error(System.nanoTime(), e);
                        lost[index] += n;
                        sleepMillis(10);
                    }
                }
            }, "fill-" + i);
            workers[i].setDaemon(true);
            workers[i].start();
        }
        int stuck = 0;
        for (Thread t : workers) {
            t.join(Math.max(1, (deadline - System.nanoTime()) / 1_000_000 + 60_000));
            if (t.isAlive()) {
                stuck++;
            }
        }
        long end = System.nanoTime();
        event("window_end");
        producer.shutdown();

        Samples all = new Samples();
        for (Samples s : per) {
            synchronized (s) {
                all.addAll(s);
            }
        }
        long msgs = 0;
        long failed = 0;
        for (int i = 0; i < threads; i++) {
            msgs += stored[i];
            failed += lost[i];
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("result", "fill");
        r.put("requested", total);
        r.put("msgs", msgs);
        r.put("window_s", seconds(end - start));
        r.put("msgs_per_s", msgs / seconds(end - start));
        r.put("sends", all.n);
        r.put("failed_msgs", failed);
        r.put("unsent_msgs", total - msgs - failed);
        r.put("errors", all.errN);
        r.put("error_kinds", new LinkedHashMap<String, Object>(all.errKinds));
        r.put("statuses", new LinkedHashMap<String, Object>(all.statuses));
        r.put("threads", threads);
        r.put("batch", size);
        r.put("stuck_threads", stuck);
        // Head and tail rates: the first and the last 20 % of the batches, by completion time.
        long[] done = Arrays.copyOf(all.done, all.n);
        Arrays.sort(done);
        headTail(r, done, start, size);
        latencies(r, all.lat, all.n); // per batch
        Map<String, Object> ends = new TreeMap<>();
        long[] merged = new long[1024];
        Arrays.fill(merged, -1);
        for (long[] e : perQueueEnd) {
            for (int q = 0; q < e.length; q++) {
                merged[q] = Math.max(merged[q], e[q]);
            }
        }
        for (int q = 0; q < merged.length; q++) {
            if (merged[q] >= 0) {
                ends.put(String.valueOf(q), merged[q]);
            }
        }
        r.put("queue_ends", ends);
        emit(r);
        return 0;
    }

    /** head_msgs_per_s / tail_msgs_per_s over the first and last 20 % of sorted batch completion times. */
    private static void headTail(Map<String, Object> r, long[] sortedDone, long start, int perSend) {
        int n = sortedDone.length;
        int part = Math.max(1, n / 5);
        if (n < 2 || part >= n) {
            r.put("head_msgs_per_s", Double.NaN);
            r.put("tail_msgs_per_s", Double.NaN);
            return;
        }
        // The head from the first completion (excludes connecting); the tail ends at the last completion.
        long headSpan = sortedDone[part - 1] - sortedDone[0];
        long tailSpan = sortedDone[n - 1] - sortedDone[n - 1 - part];
        r.put("first_s", seconds(sortedDone[0] - start));
        r.put("head_msgs_per_s", headSpan > 0 ? (double) part * perSend / seconds(headSpan) : Double.NaN);
        r.put("tail_msgs_per_s", tailSpan > 0 ? (double) part * perSend / seconds(tailSpan) : Double.NaN);
    }

    // ------------------------------------------------------------------ drain: one push consumer, whole backlog

    private static int drain(Opts o) throws Exception {
        String topic = o.req("topic");
        long expect = Long.parseLong(o.req("messages"));
        if (expect < 1) {
            usage("--messages must be at least 1");
        }
        long part = Math.max(1, expect / 5);
        ConcurrentHashMap<Integer, BitSet> seen = new ConcurrentHashMap<>();
        AtomicLong distinct = new AtomicLong();
        AtomicLong deliveries = new AtomicLong();
        AtomicLong duplicates = new AtomicLong();
        long[] marks = new long[4]; // first message, head end, tail start, last message (nanoTime)
        CountDownLatch done = new CountDownLatch(1);

        DefaultMQPushConsumer consumer = new DefaultMQPushConsumer(o.str("group", "bench_drain_" + System.nanoTime()));
        consumer.setNamesrvAddr(o.req("namesrv"));
        consumer.setInstanceName(instanceName("drain"));
        consumer.setVipChannelEnabled(false);
        consumer.setMessageModel(MessageModel.CLUSTERING);
        consumer.setConsumeFromWhere(ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET);
        consumer.subscribe(topic, "*");
        consumer.registerMessageListener((MessageListenerConcurrently) (msgs, context) -> {
            for (MessageExt m : msgs) {
                deliveries.incrementAndGet();
                BitSet bits = seen.computeIfAbsent(m.getQueueId(), q -> new BitSet());
                boolean fresh;
                synchronized (bits) {
                    int off = (int) m.getQueueOffset();
                    fresh = !bits.get(off);
                    if (fresh) {
                        bits.set(off);
                    }
                }
                if (!fresh) {
                    duplicates.incrementAndGet();
                    continue;
                }
                long d = distinct.incrementAndGet();
                long now = System.nanoTime();
                synchronized (marks) {
                    if (d == 1) {
                        marks[0] = now;
                    }
                    if (d == part) {
                        marks[1] = now;
                    }
                    if (d == expect - part) {
                        marks[2] = now;
                    }
                    if (d == expect) {
                        marks[3] = now;
                    }
                }
                if (d == expect) {
                    done.countDown();
                }
            }
            return ConsumeConcurrentlyStatus.CONSUME_SUCCESS;
        });

        event("window_start");
        long start = System.nanoTime();
        consumer.start();
        boolean complete = done.await((long) (o.dbl("timeout", 900) * 1000), TimeUnit.MILLISECONDS);
        long end = System.nanoTime();
        event("window_end");
        sleepMillis(o.integer("linger-ms", 1000)); // count redeliveries that arrive just after the last message
        int pullBatch = consumer.getPullBatchSize();
        int consumeThreads = consumer.getConsumeThreadMax();
        consumer.shutdown();

        long[] m;
        synchronized (marks) {
            m = marks.clone();
        }
        long last = complete ? m[3] : end;
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("result", "drain");
        r.put("expected", expect);
        r.put("msgs", distinct.get());
        r.put("complete", complete);
        r.put("window_s", seconds(last - start));
        r.put("msgs_per_s", distinct.get() / seconds(last - start));
        r.put("deliveries", deliveries.get());
        r.put("duplicates", duplicates.get());
        r.put("first_s", m[0] > 0 ? seconds(m[0] - start) : Double.NaN);
        // Head: the first 20 % from the first message (start-up excluded); tail: the last 20 %.
        r.put("head_msgs_per_s", m[1] > m[0] && m[0] > 0 ? part / seconds(m[1] - m[0]) : Double.NaN);
        r.put("tail_msgs_per_s", complete && m[3] > m[2] && m[2] > 0 ? part / seconds(m[3] - m[2]) : Double.NaN);
        r.put("part_msgs", part);
        Map<String, Object> queues = new TreeMap<>();
        for (Map.Entry<Integer, BitSet> e : seen.entrySet()) {
            BitSet bits = e.getValue();
            Map<String, Object> q = new LinkedHashMap<>();
            synchronized (bits) {
                q.put("distinct", bits.cardinality());
                q.put("end", bits.length()); // highest offset seen + 1
            }
            queues.put(String.valueOf(e.getKey()), q);
        }
        r.put("queues", queues);
        r.put("pull_batch", pullBatch);
        r.put("consume_threads", consumeThreads);
        emit(r);
        return 0;
    }
}
