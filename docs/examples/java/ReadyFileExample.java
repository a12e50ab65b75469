import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.client.producer.SendResult;
import org.apache.rocketmq.common.message.Message;

/**
 * A pocketmq for a Java test: start {@code pocketmq up --ready-file}, wait for the file, read the addresses from it.
 * No log scraping, no fixed ports (port 0: the kernel picks free ones), a fresh store per run.
 *
 * <p>With JUnit 5:
 * <pre>
 * static ReadyFileExample.PocketMQ mq;
 * &#64;BeforeAll static void start() throws Exception { mq = ReadyFileExample.PocketMQ.start(); }
 * &#64;AfterAll static void stop() throws Exception { mq.close(); }
 * // producer.setNamesrvAddr(mq.namesrvAddr);
 * </pre>
 *
 * <p>Run as it is (Java 11+ runs a single source file; the classpath needs rocketmq-client):
 * {@code java -cp <rocketmq-client classpath> ReadyFileExample.java}. The command that starts pocketmq is
 * {@code pocketmq}, or what {@code POCKETMQ_COMMAND} says (e.g. {@code python -m pocketmq}).
 * compat_tests/test_ready_file_examples.py runs it.
 */
public final class ReadyFileExample {
    public static void main(String[] args) throws Exception {
        try (PocketMQ mq = PocketMQ.start()) {
            System.out.println("namesrvAddr=" + mq.namesrvAddr);
            DefaultMQProducer producer = new DefaultMQProducer("ready-file-example");
            producer.setNamesrvAddr(mq.namesrvAddr);
            producer.start();
            try {
                SendResult result = producer.send(new Message("ReadyFileT", "TagA", "hello".getBytes(StandardCharsets.UTF_8)));
                System.out.println("sent " + result.getSendStatus() + " queueOffset=" + result.getQueueOffset());
            } finally {
                producer.shutdown();
            }
        }
        System.out.println("stopped");
    }

    /** One {@code pocketmq up} process with a store of its own; {@link #close()} stops it and removes the store. */
    public static final class PocketMQ implements AutoCloseable {
        private static final Pattern FIELD = Pattern.compile("\"(\\w+)\"\\s*:\\s*\"([^\"]*)\"");

        public final String namesrvAddr;
        public final String brokerAddr;
        public final String httpEndpoint;
        private final Process process;
        private final Path dir;

        private PocketMQ(Process process, Path dir, String ready) {
            this.process = process;
            this.dir = dir;
            this.namesrvAddr = field(ready, "namesrvAddr");
            this.brokerAddr = field(ready, "brokerAddr");
            this.httpEndpoint = field(ready, "httpEndpoint");
        }

        public static PocketMQ start() throws IOException, InterruptedException {
            Path dir = Files.createTempDirectory("pocketmq-");
            Path ready = dir.resolve("ready.json");
            String command = System.getenv().getOrDefault("POCKETMQ_COMMAND", "pocketmq");
            List<String> cmd = new ArrayList<>(Arrays.asList(command.trim().split("\\s+")));
            cmd.addAll(Arrays.asList("up", "--data-dir", dir.resolve("data").toString(), "--host", "127.0.0.1",
                "--namesrv-port", "0", "--broker-port", "0", "--grpc-port", "0", "--http-port", "0",
                "--ready-file", ready.toString()));
            Process process = new ProcessBuilder(cmd)
                .redirectErrorStream(true)
                .redirectOutput(dir.resolve("pocketmq.log").toFile())
                .start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            // The file appears (written atomically) once every port accepts connections.
            while (!Files.exists(ready)) {
                if (!process.isAlive() || System.nanoTime() > deadline) {
                    process.destroyForcibly();
                    throw new IOException("pocketmq did not start; see " + dir.resolve("pocketmq.log"));
                }
                Thread.sleep(20);
            }
            return new PocketMQ(process, dir, Files.readString(ready));
        }

        private static String field(String json, String name) {
            Matcher m = FIELD.matcher(json);
            while (m.find()) {
                if (m.group(1).equals(name)) {
                    return m.group(2);
                }
            }
            return null;
        }

        @Override
        public void close() throws IOException, InterruptedException {
            process.destroy(); // SIGTERM: pocketmq flushes and exits 0
            if (!process.waitFor(15, TimeUnit.SECONDS)) {
                process.destroyForcibly().waitFor();
            }
            System.out.println("pocketmq exited with " + process.exitValue());
            try (var paths = Files.walk(dir)) {
                paths.sorted((a, b) -> b.compareTo(a)).map(Path::toFile).forEach(File::delete);
            }
        }
    }
}
