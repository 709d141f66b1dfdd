// OkHttp (Android's WebSocket client; Debian's libokhttp-java on the JVM) against a device URL;
// prints ONE JSON line of what the app's WebSocketListener saw.
//
// usage: java -cp target/okhttp-client:/usr/share/java/okhttp.jar:/usr/share/java/okio.jar \
//          WsOkHttp URL MODE [LIMIT_SECONDS] [--ping-interval S] [--read-timeout S]
//        java ... WsOkHttp --version
//   session    open, send hello, wait for welcome, app ping -> pong, close 1000
//   hold       open, send hello, read until the connection ends (or LIMIT)
//   keepalive  like hold, with pingInterval 1 s (or --ping-interval)
// --ping-interval S  OkHttpClient.Builder.pingInterval (default 0 = off, OkHttp's default)
// --read-timeout S   readTimeout (default 10 s, OkHttp's default; it bounds the handshake)
// The line: {"client","version","opened","received":[types],"close_code","close_reason",
// "closed_code","closed_reason","error":{"type","message","cause":[...],"response_code"}|null,
// "ended_by","elapsed_ms"}. close_code/close_reason are what onClosing got (the peer's close
// frame), closed_* what onClosed got; error is onFailure's throwable (simple class name).
//
// Like an app (OkHttp's own samples), onClosing answers with close(code, null).

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import okhttp3.OkHttpClient;
import okhttp3.Request;
import okhttp3.Response;
import okhttp3.WebSocket;
import okhttp3.WebSocketListener;
import okio.ByteString;

public final class WsOkHttp {
  private final Object lock = new Object();
  private final CountDownLatch done = new CountDownLatch(1);
  private final String mode;
  private boolean opened;
  private final List<String> received = new ArrayList<>();
  private Integer closeCode;
  private String closeReason;
  private Integer closedCode;
  private String closedReason;
  private Throwable failure;
  private Integer failureResponseCode;
  private String endedBy;

  private WsOkHttp(String mode) {
    this.mode = mode;
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length == 1 && args[0].equals("--version")) {
      System.out.println(okhttp3.internal.Version.userAgent() + " on Java "
          + System.getProperty("java.version"));
      System.exit(0);
    }
    if (args.length < 2) {
      System.err.println("usage: WsOkHttp URL MODE [LIMIT_SECONDS] [--ping-interval S] "
          + "[--read-timeout S]");
      System.exit(2);
    }
    String url = args[0];
    String mode = args[1];
    double limit = 5.0;
    double pingInterval = mode.equals("keepalive") ? 1.0 : 0.0;
    double readTimeout = 10.0;
    for (int i = 2; i < args.length; i++) {
      switch (args[i]) {
        case "--ping-interval":
          pingInterval = Double.parseDouble(args[++i]);
          break;
        case "--read-timeout":
          readTimeout = Double.parseDouble(args[++i]);
          break;
        default:
          limit = Double.parseDouble(args[i]);
      }
    }
    long started = System.nanoTime();
    OkHttpClient client = new OkHttpClient.Builder()
        .pingInterval(millis(pingInterval), TimeUnit.MILLISECONDS)
        .readTimeout(millis(readTimeout), TimeUnit.MILLISECONDS)
        .build();
    WsOkHttp app = new WsOkHttp(mode);
    WebSocket ws = client.newWebSocket(new Request.Builder().url(url).build(), app.listener());
    boolean finished = app.done.await(millis(limit), TimeUnit.MILLISECONDS);
    String line;
    synchronized (app.lock) {
      if (!finished && app.endedBy == null) {
        app.endedBy = "limit";
      }
      line = app.json(started);
    }
    if (!finished) {
      ws.cancel();
    }
    System.out.println(line);
    System.out.flush();
    client.dispatcher().executorService().shutdownNow();
    client.connectionPool().evictAll();
    System.exit(0);
  }

  private static long millis(double seconds) {
    return Math.round(seconds * 1000.0);
  }

  private WebSocketListener listener() {
    return new WebSocketListener() {
      @Override
      public void onOpen(WebSocket ws, Response response) {
        synchronized (lock) {
          opened = true;
        }
        ws.send("{\"type\":\"hello\",\"client\":\"okhttp\",\"version\":\"1\"}");
      }

      @Override
      public void onMessage(WebSocket ws, String text) {
        String type = messageType(text);
        synchronized (lock) {
          received.add(type);
        }
        if (mode.equals("session")) {
          if (type.equals("welcome")) {
            ws.send("{\"type\":\"ping\",\"seq\":1}");
          } else if (type.equals("pong")) {
            synchronized (lock) {
              endedBy = "client";
            }
            ws.close(1000, "done");
          }
        }
      }

      @Override
      public void onMessage(WebSocket ws, ByteString bytes) {
        synchronized (lock) {
          received.add("<binary>");
        }
      }

      @Override
      public void onClosing(WebSocket ws, int code, String reason) {
        synchronized (lock) {
          closeCode = code;
          closeReason = reason;
        }
        ws.close(code == 1005 ? 1000 : code, null);
      }

      @Override
      public void onClosed(WebSocket ws, int code, String reason) {
        synchronized (lock) {
          closedCode = code;
          closedReason = reason;
          if (endedBy == null) {
            endedBy = "server_or_network";
          }
        }
        done.countDown();
      }

      @Override
      public void onFailure(WebSocket ws, Throwable t, Response response) {
        synchronized (lock) {
          failure = t;
          failureResponseCode = response == null ? null : response.code();
          if (endedBy == null) {
            endedBy = opened ? "server_or_network" : "error";
          }
        }
        done.countDown();
      }
    };
  }

  /** The message's JSON `type` (found by text: the protocol puts it first), else <non-json>. */
  private static String messageType(String text) {
    String key = "\"type\":\"";
    int at = text.indexOf(key);
    if (!text.startsWith("{") || at < 0) {
      return "<non-json>";
    }
    int end = text.indexOf('"', at + key.length());
    return end < 0 ? "<non-json>" : text.substring(at + key.length(), end);
  }

  private String json(long started) {
    StringBuilder out = new StringBuilder("{");
    field(out, "client", quote("okhttp")).append(',');
    field(out, "version", quote(okhttp3.internal.Version.userAgent())).append(',');
    field(out, "opened", String.valueOf(opened)).append(',');
    List<String> types = new ArrayList<>();
    for (String type : received) {
      types.add(quote(type));
    }
    field(out, "received", "[" + String.join(",", types) + "]").append(',');
    field(out, "close_code", String.valueOf(closeCode)).append(',');
    field(out, "close_reason", quote(closeReason)).append(',');
    field(out, "closed_code", String.valueOf(closedCode)).append(',');
    field(out, "closed_reason", quote(closedReason)).append(',');
    field(out, "error", failure == null ? "null" : describe(failure)).append(',');
    field(out, "ended_by", quote(endedBy)).append(',');
    field(out, "elapsed_ms", String.valueOf((System.nanoTime() - started) / 1_000_000));
    return out.append('}').toString();
  }

  private String describe(Throwable t) {
    List<String> causes = new ArrayList<>();
    for (Throwable c = t.getCause(); c != null && causes.size() < 5; c = c.getCause()) {
      causes.add(quote(c.getClass().getSimpleName() + ": " + c.getMessage()));
    }
    return "{\"type\":" + quote(t.getClass().getSimpleName())
        + ",\"message\":" + quote(String.valueOf(t.getMessage()))
        + ",\"cause\":[" + String.join(",", causes) + "]"
        + ",\"response_code\":" + failureResponseCode + "}";
  }

  private static StringBuilder field(StringBuilder out, String name, String value) {
    return out.append(quote(name)).append(':').append(value);
  }

  private static String quote(String s) {
    if (s == null) {
      return "null";
    }
    StringBuilder q = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"':
          q.append("\\\"");
          break;
        case '\\':
          q.append("\\\\");
          break;
        default:
          if (c < 0x20) {
            q.append(String.format("\\u%04x", (int) c));
          } else {
            q.append(c);
          }
      }
    }
    return q.append('"').toString();
  }
}
