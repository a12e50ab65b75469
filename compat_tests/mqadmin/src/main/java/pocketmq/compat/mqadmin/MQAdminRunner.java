package pocketmq.compat.mqadmin;

import java.io.BufferedReader;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.io.UnsupportedEncodingException;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.nio.charset.Charset;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;

import org.apache.rocketmq.tools.command.MQAdminStartup;

/**
 * Runs many mqadmin subcommands in one JVM, each exactly as {@code java MQAdminStartup <args>} would: the stock
 * entry point on a fresh thread named "main", System.out and System.err captured apart, System.exit trapped and
 * reported as the exit code, an exception escaping main reported as the JVM would (exit 1).
 *
 * <p>Protocol: one JSON line per request on stdin, {@code {"id": 7, "args": [...]}}; one JSON line per answer on
 * stdout, {@code {"id": 7, "exit": 0, "stdout": BASE64, "stderr": BASE64, "clients": 0, "threads": 31}}. The
 * bytes are what the tool printed in the platform charset. {@code clients} is how many client instances the
 * command left registered in MQClientManager and {@code threads} how many threads are alive: the caller restarts
 * the runner when a command leaves state a fresh JVM would not have. The first line is {@code {"ready": true}}, or
 * {@code {"ready": false, "error": ...}} when exits cannot be trapped. At the end of stdin the runner ends.
 *
 * <p>Between commands the System properties are put back as they were before the command and the tool's list of
 * subcommands is emptied (main0 appends all of them on every call).
 */
public final class MQAdminRunner {
    private static final Charset PLATFORM = Charset.defaultCharset();
    private static final String END = new String("end of stdin");  // compared by identity

    private final PrintStream protocol;
    private final PrintStream stray;
    private final ExitTrap trap;
    private final List<?> subCommands;

    private MQAdminRunner(PrintStream protocol, PrintStream stray, ExitTrap trap, List<?> subCommands) {
        this.protocol = protocol;
        this.stray = stray;
        this.trap = trap;
        this.subCommands = subCommands;
    }

    public static void main(String[] ignored) throws Exception {
        PrintStream protocol = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "US-ASCII");
        // Whatever is printed outside a command (a thread a command left behind) goes to the runner's stderr.
        PrintStream stray = new PrintStream(new FileOutputStream(FileDescriptor.err), true);
        BufferedReader stdin = new BufferedReader(
            new InputStreamReader(new FileInputStream(FileDescriptor.in), StandardCharsets.UTF_8));
        System.setOut(stray);
        System.setErr(stray);
        System.setIn(new ByteArrayInputStream(new byte[0]));
        ExitTrap trap = new ExitTrap();
        try {
            System.setSecurityManager(trap);
        } catch (UnsupportedOperationException | SecurityException e) {
            protocol.println("{\"ready\":false,\"error\":" + quote("cannot trap System.exit: " + e) + "}");
            Runtime.getRuntime().halt(3);
        }
        MQAdminRunner runner = new MQAdminRunner(protocol, stray, trap, subCommandList());
        BlockingQueue<String> requests = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> readRequests(stdin, requests, trap), "runner-stdin");
        reader.setDaemon(true);
        reader.start();
        protocol.println("{\"ready\":true}");
        for (String line = requests.take(); line != END; line = requests.take()) {
            runner.answer(line);
        }
        halt(trap, 0);
    }

    /**
     * Queues the request lines. At the end of stdin (the caller closed it or died) the runner answers what is
     * queued and ends; a command still running a minute later does not keep it alive.
     */
    private static void readRequests(BufferedReader stdin, BlockingQueue<String> requests, ExitTrap trap) {
        try {
            for (String line = stdin.readLine(); line != null; line = stdin.readLine()) {
                if (!line.trim().isEmpty()) {
                    requests.add(line);
                }
            }
        } catch (IOException e) {
            e.printStackTrace();
        }
        requests.add(END);
        try {
            Thread.sleep(60_000);
        } catch (InterruptedException ignored) {
            // ending anyway
        }
        halt(trap, 4);
    }

    private static void halt(ExitTrap trap, int status) {
        trap.release();
        Runtime.getRuntime().halt(status);
    }

    private void answer(String line) throws InterruptedException, UnsupportedEncodingException {
        Request request;
        try {
            request = Request.parse(line);
        } catch (IllegalArgumentException e) {
            protocol.println("{\"error\":" + quote(e.getMessage()) + "}");
            return;
        }
        Properties before = copy(System.getProperties());
        subCommands.clear();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int exit;
        try (PrintStream outStream = new PrintStream(out, true, PLATFORM.name());
             PrintStream errStream = new PrintStream(err, true, PLATFORM.name())) {
            System.setOut(outStream);
            System.setErr(errStream);
            try {
                exit = runMain(request.args);
            } finally {
                System.setOut(stray);
                System.setErr(stray);
            }
        }
        restore(before);
        protocol.println("{\"id\":" + request.id + ",\"exit\":" + exit
            + ",\"stdout\":\"" + Base64.getEncoder().encodeToString(out.toByteArray()) + "\""
            + ",\"stderr\":\"" + Base64.getEncoder().encodeToString(err.toByteArray()) + "\""
            + ",\"clients\":" + registeredClients() + ",\"threads\":" + Thread.getAllStackTraces().size() + "}");
    }

    private int runMain(String[] args) throws InterruptedException {
        int[] exit = {0};
        trap.resetLastExit();
        Thread command = new Thread(() -> {
            try {
                MQAdminStartup.main(args);
            } catch (ExitTrap.Exited e) {
                exit[0] = e.status;
            } catch (Throwable t) {
                // What the JVM's default handler prints for an exception escaping main, and its exit status.
                System.err.print("Exception in thread \"main\" ");
                t.printStackTrace();
                exit[0] = 1;
            }
        }, "main");
        command.start();
        command.join();
        Integer elsewhere = trap.lastExit();  // System.exit called by another thread: the JVM would have ended too
        return elsewhere != null && exit[0] == 0 ? elsewhere : exit[0];
    }

    /** MQAdminStartup's static list of subcommands (SUB_COMMANDS in 5.x, subCommandList in 4.x). */
    private static List<?> subCommandList() throws IllegalAccessException {
        for (Field field : MQAdminStartup.class.getDeclaredFields()) {
            if (Modifier.isStatic(field.getModifiers()) && List.class.isAssignableFrom(field.getType())) {
                field.setAccessible(true);
                return (List<?>) field.get(null);
            }
        }
        throw new IllegalStateException("MQAdminStartup has no static list of subcommands");
    }

    /** How many client instances MQClientManager holds (-1 if that cannot be read). */
    private static int registeredClients() {
        try {
            Class<?> manager = Class.forName("org.apache.rocketmq.client.impl.MQClientManager");
            Method getInstance = manager.getMethod("getInstance");
            Field table = manager.getDeclaredField("factoryTable");
            table.setAccessible(true);
            return ((Map<?, ?>) table.get(getInstance.invoke(null))).size();
        } catch (ReflectiveOperationException | RuntimeException e) {
            return -1;
        }
    }

    private static Properties copy(Properties properties) {
        Properties copy = new Properties();
        for (String name : properties.stringPropertyNames()) {
            copy.setProperty(name, properties.getProperty(name));
        }
        return copy;
    }

    private static void restore(Properties before) {
        Properties now = System.getProperties();
        for (String name : new ArrayList<>(now.stringPropertyNames())) {
            if (before.getProperty(name) == null) {
                now.remove(name);
            }
        }
        for (String name : before.stringPropertyNames()) {
            now.setProperty(name, before.getProperty(name));
        }
    }

    private static String quote(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : String.valueOf(text).toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
