package pocketmq.compat.mqadmin;

import java.util.ArrayList;
import java.util.List;

/**
 * One request line of the runner: {@code {"id": 7, "args": ["clusterList", "-n", "127.0.0.1:9876"]}}. Only this
 * shape is accepted (the Python side writes it with json.dumps); anything else is an IllegalArgumentException
 * naming what was wrong. The runner has no JSON library of its own so that it depends on nothing but the tool.
 */
final class Request {
    final long id;
    final String[] args;

    private Request(long id, String[] args) {
        this.id = id;
        this.args = args;
    }

    static Request parse(String line) {
        Parser p = new Parser(line);
        Long id = null;
        List<String> args = null;
        p.expect('{');
        if (!p.tryConsume('}')) {
            do {
                String key = p.string();
                p.expect(':');
                if (key.equals("id")) {
                    id = p.number();
                } else if (key.equals("args")) {
                    args = p.stringArray();
                } else {
                    throw new IllegalArgumentException("unknown request field \"" + key + "\"");
                }
            } while (p.tryConsume(','));
            p.expect('}');
        }
        p.end();
        if (id == null || args == null) {
            throw new IllegalArgumentException("a request needs \"id\" and \"args\": " + line);
        }
        return new Request(id, args.toArray(new String[0]));
    }

    private static final class Parser {
        private final String text;
        private int pos;

        Parser(String text) {
            this.text = text;
        }

        void skipSpace() {
            while (pos < text.length() && Character.isWhitespace(text.charAt(pos))) {
                pos++;
            }
        }

        boolean tryConsume(char c) {
            skipSpace();
            if (pos < text.length() && text.charAt(pos) == c) {
                pos++;
                return true;
            }
            return false;
        }

        void expect(char c) {
            if (!tryConsume(c)) {
                throw error("'" + c + "'");
            }
        }

        void end() {
            skipSpace();
            if (pos != text.length()) {
                throw error("the end of the line");
            }
        }

        long number() {
            skipSpace();
            int start = pos;
            while (pos < text.length() && (Character.isDigit(text.charAt(pos)) || text.charAt(pos) == '-')) {
                pos++;
            }
            try {
                return Long.parseLong(text.substring(start, pos));
            } catch (NumberFormatException e) {
                pos = start;
                throw error("an integer");
            }
        }

        List<String> stringArray() {
            List<String> items = new ArrayList<>();
            expect('[');
            if (tryConsume(']')) {
                return items;
            }
            do {
                items.add(string());
            } while (tryConsume(','));
            expect(']');
            return items;
        }

        String string() {
            expect('"');
            StringBuilder out = new StringBuilder();
            while (pos < text.length()) {
                char c = text.charAt(pos++);
                if (c == '"') {
                    return out.toString();
                }
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                if (pos >= text.length()) {
                    break;
                }
                char escaped = text.charAt(pos++);
                switch (escaped) {
                    case '"': case '\\': case '/': out.append(escaped); break;
                    case 'b': out.append('\b'); break;
                    case 'f': out.append('\f'); break;
                    case 'n': out.append('\n'); break;
                    case 'r': out.append('\r'); break;
                    case 't': out.append('\t'); break;
                    case 'u':
                        if (pos + 4 > text.length()) {
                            throw error("four hex digits");
                        }
                        out.append((char) Integer.parseInt(text.substring(pos, pos + 4), 16));
                        pos += 4;
                        break;
                    default: throw error("a JSON escape");
                }
            }
            throw error("a closing '\"'");
        }

        IllegalArgumentException error(String wanted) {
            return new IllegalArgumentException("bad request at column " + pos + ": expected " + wanted + " in " + text);
        }
    }
}
