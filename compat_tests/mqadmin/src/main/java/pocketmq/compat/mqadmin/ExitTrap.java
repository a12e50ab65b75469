package pocketmq.compat.mqadmin;

import java.security.Permission;

/**
 * Turns System.exit (the options parser calls it on a bad option and after -h) into an {@link Exited} thrown in
 * the calling thread, so the runner survives and reports the status. Allows everything else. Needs
 * -Djava.security.manager=allow from Java 18 on (17 only warns); after {@link #release()} exits go through, so the
 * runner can end itself.
 */
final class ExitTrap extends SecurityManager {
    /** An Error, not an Exception: MQAdminStartup.main0 and the subcommands catch Exception and would go on. */
    static final class Exited extends Error {
        final int status;

        Exited(int status) {
            super("System.exit(" + status + ")", null, false, false);
            this.status = status;
        }
    }

    private volatile boolean released;
    private volatile Integer lastExit;

    void release() {
        released = true;
    }

    /** The status of the last trapped exit since {@link #resetLastExit()}, whichever thread called it; or null. */
    Integer lastExit() {
        return lastExit;
    }

    void resetLastExit() {
        lastExit = null;
    }

    @Override
    public void checkExit(int status) {
        if (!released) {
            lastExit = status;
            throw new Exited(status);
        }
    }

    @Override
    public void checkPermission(Permission perm) {
    }

    @Override
    public void checkPermission(Permission perm, Object context) {
    }
}
