//! Scenario driver for the official RocketMQ 5.x Rust client (crates.io `rocketmq`, gRPC).
//! A JSON-lines CLI with the commands and lines of the Go 5.x driver (compat_tests/go5/main.go): stdout carries only
//! JSON lines; the client's own log (its terminal logger, slog-term) goes to stderr.
//!
//!     produce        --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction]
//!                    [--commit|--rollback|--no-end] [--linger S]
//!     simple-consume --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
//!                    [--invisible-s 15] [--batch 16] [--linger S] [--no-ack]
//!     push-consume   (the crate has no PushConsumer: one startup error line and a done line)
//!     every command: [--plaintext|--tls] [--ca-file PEM] [--request-timeout-ms MS]
//!
//! produce: one JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...},
//! "message_group", "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end":
//! "commit"|"rollback"|"none", "recall": true}. Prints per message, in input order, {"ok": true, "index",
//! "message_id", "sent_at_ms", "offset" (always null: the client's SendReceipt has none), ["transaction_id"],
//! "recall_handle" (always null), ["delivery_timestamp_ms"], ["end"]} or {"ok": false, "index", ["stage":
//! "startup"], "error"}; per transaction check {"check": true, "message_id", "resolution", "at_ms"}; then {"done":
//! true, "sent", "failed"}. The transaction checker answers from the user property pmqCheck (COMMIT, ROLLBACK, else
//! UNKNOWN). The client has no recall: a message with "recall": true is not sent, its line is an error.
//! The client carries a delivery time in whole seconds (a protobuf Timestamp without nanos): the driver rounds the
//! requested instant up to the next second and reports that instant as "delivery_timestamp_ms".
//!
//! simple-consume (SimpleConsumer receive_with + ack): {"ready": true, "at_ms"} once the client started, then one line
//! per delivery {"message_id", "topic", "body_b64", "tag", "keys" (sorted), "properties", "message_group",
//! "delivery_attempt", "delivery_timestamp_ms" (null: none), "born_host", "born_timestamp_ms" (whole seconds: the
//! client drops the nanos), "store_timestamp_ms" (always null: not exposed), "message_type", "received_at_ms",
//! "acked" (and "ack_error" when ack failed)}; {"ok": false, "stage": "startup"|"receive", "error"} on errors (a failed
//! receive is retried after 1 s); stop at N deliveries (plus --linger seconds), at the timeout or on SIGTERM; then
//! {"done": true, "received": n, "errors": e}. The client's MessageView has no message type: "message_type" is
//! derived (a message group: FIFO, a delivery timestamp: DELAY, else NORMAL), so a TRANSACTION message shows as
//! NORMAL.
//!
//! TLS: the client's default is plaintext (ClientOption enable_tls false); --tls sets enable_tls, and the client then
//! verifies the server against the system's roots (tonic's tls-roots: rustls-native-certs), which the PEM file in
//! SSL_CERT_FILE replaces: --ca-file sets that variable for the process before the client starts.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rocketmq::conf::{ClientOption, ProducerOption, SimpleConsumerOption};
use rocketmq::model::common::{FilterExpression, FilterType};
use rocketmq::model::message::{MessageBuilder, MessageView};
use rocketmq::model::transaction::{Transaction, TransactionResolution};
use rocketmq::{Producer, SimpleConsumer};
use serde_json::{json, Map, Value};

const CHECK_PROPERTY: &str = "pmqCheck";

static OUT: Mutex<()> = Mutex::new(());

fn emit(obj: Value) {
    let _guard = OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{obj}");
    let _ = out.flush();
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The client's error with its source chain: its Display ends at the first source ("transport error").
fn describe(e: &rocketmq::error::ClientError) -> String {
    match e.source() {
        Some(source) => format!("{e} ({source:#})"),
        None => e.to_string(),
    }
}

fn die(msg: &str) -> ! {
    eprintln!("driver: {msg}");
    std::process::exit(2);
}

#[derive(Debug)]
struct Args {
    command: String,
    endpoints: String,
    topic: String,
    kind: String,
    end: String,
    linger: f64,
    tls: bool,
    ca_file: Option<String>,
    request_timeout_ms: u64,
    group: Option<String>,
    tag_expression: Option<String>,
    sql: Option<String>,
    expect: Option<usize>,
    timeout: Option<f64>,
    invisible_s: u64,
    batch: i32,
    no_ack: bool,
}

fn only_for(flag: &str) -> Option<&'static str> {
    match flag {
        "--kind" | "--commit" | "--rollback" | "--no-end" => Some("produce"),
        "--invisible-s" | "--batch" | "--no-ack" => Some("simple-consume"),
        "--fail-first" | "--fail-always" | "--threads" => Some("push-consume"),
        _ => None,
    }
}

fn parse(argv: &[String]) -> Args {
    let commands = ["produce", "simple-consume", "push-consume"];
    if argv.is_empty() || !commands.contains(&argv[0].as_str()) {
        die("usage: produce|simple-consume|push-consume --endpoints HOST:PORT --topic T ...");
    }
    let mut a = Args {
        command: argv[0].clone(),
        endpoints: String::new(),
        topic: String::new(),
        kind: "normal".into(),
        end: "commit".into(),
        linger: 0.0,
        tls: false,
        ca_file: None,
        request_timeout_ms: 3000,
        group: None,
        tag_expression: None,
        sql: None,
        expect: None,
        timeout: None,
        invisible_s: 15,
        batch: 16,
        no_ack: false,
    };
    let mut i = 1;
    let value = |i: &mut usize| -> String {
        *i += 1;
        argv.get(*i)
            .cloned()
            .unwrap_or_else(|| die(&format!("missing value for {}", argv[*i - 1])))
    };
    fn num<T: std::str::FromStr>(flag: &str, text: String) -> T {
        text.parse()
            .unwrap_or_else(|_| die(&format!("bad value for {flag}: {text}")))
    }
    while i < argv.len() {
        let flag = argv[i].clone();
        if let Some(cmd) = only_for(&flag) {
            if cmd != a.command {
                die(&format!("{flag} does not apply to {}", a.command));
            }
        }
        let consumer_only = [
            "--group",
            "--tag-expression",
            "--sql",
            "--expect",
            "--timeout",
        ];
        if consumer_only.contains(&flag.as_str()) && a.command == "produce" {
            die(&format!("{flag} does not apply to produce"));
        }
        match flag.as_str() {
            "--endpoints" => a.endpoints = value(&mut i),
            "--topic" => a.topic = value(&mut i),
            "--kind" => a.kind = value(&mut i),
            "--commit" => a.end = "commit".into(),
            "--rollback" => a.end = "rollback".into(),
            "--no-end" => a.end = "none".into(),
            "--linger" => a.linger = num(&flag, value(&mut i)),
            "--plaintext" => a.tls = false,
            "--tls" => a.tls = true,
            "--ca-file" => a.ca_file = Some(value(&mut i)),
            "--request-timeout-ms" => a.request_timeout_ms = num(&flag, value(&mut i)),
            "--group" => a.group = Some(value(&mut i)),
            "--tag-expression" => a.tag_expression = Some(value(&mut i)),
            "--sql" => a.sql = Some(value(&mut i)),
            "--expect" => a.expect = Some(num(&flag, value(&mut i))),
            "--timeout" => a.timeout = Some(num(&flag, value(&mut i))),
            "--invisible-s" => a.invisible_s = num(&flag, value(&mut i)),
            "--batch" => a.batch = num(&flag, value(&mut i)),
            "--no-ack" => a.no_ack = true,
            // push-consume options, accepted for the CLI's sake: the command only reports the missing PushConsumer.
            "--fail-first" | "--fail-always" => {}
            "--threads" => {
                value(&mut i);
            }
            _ => die(&format!("unknown argument {flag}")),
        }
        i += 1;
    }
    if a.endpoints.is_empty() || a.topic.is_empty() {
        die("--endpoints and --topic are required");
    }
    if a.command != "produce" && (a.group.is_none() || a.expect.is_none() || a.timeout.is_none()) {
        die("--group, --expect and --timeout are required");
    }
    if a.tag_expression.is_some() && a.sql.is_some() {
        die("--tag-expression and --sql exclude each other");
    }
    if !["normal", "fifo", "delay", "transaction"].contains(&a.kind.as_str()) {
        die(&format!("unknown kind {}", a.kind));
    }
    a
}

fn client_option(a: &Args) -> ClientOption {
    let mut option = ClientOption::default();
    option.set_access_url(a.endpoints.clone());
    option.set_enable_tls(a.tls);
    option.set_timeout(Duration::from_millis(a.request_timeout_ms));
    option
}

#[tokio::main]
async fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let a = parse(&argv);
    if let Some(pem) = &a.ca_file {
        std::env::set_var("SSL_CERT_FILE", pem); // read by rustls-native-certs when the TLS channel is made
    }
    let code = match a.command.as_str() {
        "produce" => produce(&a).await,
        "simple-consume" => simple_consume(&a).await,
        _ => push_consume(),
    };
    std::process::exit(code);
}

// ------------------------------------------------------------------------------------------------ produce

struct Spec {
    body: Vec<u8>,
    tag: Option<String>,
    keys: Vec<String>,
    properties: HashMap<String, String>,
    message_group: Option<String>,
    delivery_timestamp_ms: Option<i64>,
    delivery_delay_ms: Option<i64>,
    end: Option<String>,
    recall: bool,
}

fn spec(line: &str) -> Result<Spec, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let body = B64
        .decode(text("body_b64").unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let keys = v
        .get("keys")
        .and_then(Value::as_array)
        .map(|ks| {
            ks.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let properties = v
        .get("properties")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, x)| x.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(Spec {
        body,
        tag: text("tag"),
        keys,
        properties,
        message_group: text("message_group"),
        delivery_timestamp_ms: v.get("delivery_timestamp_ms").and_then(Value::as_i64),
        delivery_delay_ms: v.get("delivery_delay_ms").and_then(Value::as_i64),
        end: text("end"),
        recall: v.get("recall").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn read_specs() -> Vec<Spec> {
    let mut specs = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_else(|e| die(&format!("bad input: {e}")));
        if line.trim().is_empty() {
            continue;
        }
        specs.push(spec(&line).unwrap_or_else(|e| die(&format!("bad input: {e}"))));
    }
    specs
}

fn kind_mismatch(kind: &str, s: &Spec) -> Option<String> {
    let group = s.message_group.is_some();
    let delay = s.delivery_timestamp_ms.is_some() || s.delivery_delay_ms.is_some();
    let (want_group, want_delay) = (kind == "fifo", kind == "delay");
    (group != want_group || delay != want_delay).then(|| {
        format!("a {kind} message needs message_group={want_group}, delivery time={want_delay}")
    })
}

type Answered = Arc<Mutex<HashSet<String>>>;

fn checker(answered: Answered) -> Box<rocketmq::model::transaction::TransactionChecker> {
    Box::new(move |_transaction_id: String, view: MessageView| {
        let answer = view
            .properties()
            .get(CHECK_PROPERTY)
            .map(|s| s.to_uppercase())
            .unwrap_or_default();
        let (resolution, name) = match answer.as_str() {
            "COMMIT" => (TransactionResolution::COMMIT, "COMMIT"),
            "ROLLBACK" => (TransactionResolution::ROLLBACK, "ROLLBACK"),
            _ => (TransactionResolution::UNKNOWN, "UNKNOWN"),
        };
        let id = view.message_id().to_string();
        emit(json!({"check": true, "message_id": id, "at_ms": now_ms(), "resolution": name}));
        if name != "UNKNOWN" {
            answered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id);
        }
        resolution
    })
}

async fn produce(a: &Args) -> i32 {
    let specs = read_specs();
    let answered: Answered = Arc::new(Mutex::new(HashSet::new()));
    let mut option = ProducerOption::default();
    option.set_topics(vec![a.topic.clone()]);
    let created = if a.kind == "transaction" {
        Producer::new_transaction_producer(option, client_option(a), checker(answered.clone()))
    } else {
        Producer::new(option, client_option(a))
    };
    let started = match created {
        Ok(mut producer) => producer.start().await.map(|_| producer),
        Err(e) => Err(e),
    };
    let producer = match started {
        Ok(p) => p,
        Err(e) => {
            for index in 0..specs.len() {
                emit(
                    json!({"ok": false, "index": index, "stage": "startup", "error": describe(&e)}),
                );
            }
            emit(json!({"done": true, "sent": 0, "failed": specs.len()}));
            return 0;
        }
    };
    let (mut sent, mut failed) = (0, 0);
    let mut left_open = HashSet::new();
    for (index, s) in specs.into_iter().enumerate() {
        match send_one(&producer, a, s, index, &mut left_open).await {
            Ok(line) => {
                emit(line);
                sent += 1;
            }
            Err(e) => {
                emit(json!({"ok": false, "index": index, "error": e}));
                failed += 1;
            }
        }
    }
    linger(a.linger, &left_open, &answered).await;
    match tokio::time::timeout(Duration::from_secs(15), producer.shutdown()).await {
        Ok(Err(e)) => eprintln!("driver: shutdown failed: {}", describe(&e)),
        Err(_) => eprintln!("driver: shutdown did not finish within 15 s"),
        Ok(Ok(())) => {}
    }
    emit(json!({"done": true, "sent": sent, "failed": failed}));
    0
}

async fn send_one(
    p: &Producer,
    a: &Args,
    s: Spec,
    index: usize,
    left_open: &mut HashSet<String>,
) -> Result<Value, String> {
    if s.recall {
        return Err(
            "recall is not supported: rocketmq 5.0.0 has no recall API (its SendReceipt has no recall \
                    handle, Producer no recall method); the message was not sent"
                .into(),
        );
    }
    let kind = if a.kind == "transaction" {
        "normal"
    } else {
        a.kind.as_str()
    };
    if let Some(e) = kind_mismatch(kind, &s) {
        return Err(e);
    }
    let mut builder = MessageBuilder::builder()
        .set_topic(a.topic.clone())
        .set_body(s.body);
    if let Some(tag) = s.tag {
        builder = builder.set_tag(tag);
    }
    if !s.keys.is_empty() {
        builder = builder.set_keys(s.keys);
    }
    if !s.properties.is_empty() {
        builder = builder.set_properties(s.properties);
    }
    if let Some(group) = s.message_group {
        builder = builder.set_message_group(group);
    }
    let requested = s
        .delivery_timestamp_ms
        .or(s.delivery_delay_ms.map(|d| now_ms() + d));
    // The client sends whole seconds: round up, so the message is never due before the instant asked for.
    let due_s = requested.map(|ms| (ms + 999).div_euclid(1000));
    if let Some(seconds) = due_s {
        builder = builder.set_delivery_timestamp(seconds);
    }
    if a.kind == "transaction" {
        builder = builder.enable_transaction();
    }
    let message = builder.build().map_err(|e| describe(&e))?;
    let sent_at = now_ms();
    let mut line = json!({"ok": true, "index": index, "sent_at_ms": sent_at, "offset": null, "recall_handle": null});
    let fields = line.as_object_mut().expect("an object");
    if let Some(seconds) = due_s {
        fields.insert("delivery_timestamp_ms".into(), json!(seconds * 1000));
    }
    if a.kind != "transaction" {
        let receipt = p.send(message).await.map_err(|e| describe(&e))?;
        fields.insert("message_id".into(), json!(receipt.message_id()));
        return Ok(line);
    }
    let tx = p
        .send_transaction_message(message)
        .await
        .map_err(|e| describe(&e))?;
    let message_id = tx.message_id().to_string();
    fields.insert("message_id".into(), json!(message_id));
    fields.insert("transaction_id".into(), json!(tx.transaction_id()));
    let end = s.end.unwrap_or_else(|| a.end.clone());
    let ended = match end.as_str() {
        "commit" => tx.commit().await,
        "rollback" => tx.rollback().await,
        _ => {
            left_open.insert(message_id);
            Ok(())
        }
    };
    ended.map_err(|e| format!("{end}: {}", describe(&e)))?;
    fields.insert("end".into(), json!(end));
    Ok(line)
}

/// Stay up `seconds` at most; with open transactions only until the checker answered each of them (then 1 s more
/// for the client's EndTransaction).
async fn linger(seconds: f64, left_open: &HashSet<String>, answered: &Answered) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds.max(0.0));
    while Instant::now() < deadline {
        let done = !left_open.is_empty() && {
            let answered = answered.lock().unwrap_or_else(|e| e.into_inner());
            left_open.iter().all(|id| answered.contains(id))
        };
        if done {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(left.min(Duration::from_secs(1))).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ------------------------------------------------------------------------------------------------ consumers

fn delivery(mv: &MessageView) -> Map<String, Value> {
    let mut keys = mv.keys().to_vec();
    keys.sort();
    let message_type = if mv.message_group().is_some() {
        "FIFO"
    } else if mv.delivery_timestamp().is_some() {
        "DELAY"
    } else {
        "NORMAL"
    };
    let born = mv.born_timestamp();
    let line = json!({
        "message_id": mv.message_id(), "topic": mv.topic(), "body_b64": B64.encode(mv.body()), "tag": mv.tag(),
        "keys": keys, "properties": mv.properties(), "message_group": mv.message_group(),
        "delivery_attempt": mv.delivery_attempt(),
        "delivery_timestamp_ms": mv.delivery_timestamp().map(|s| s * 1000), "born_host": mv.born_host(),
        "born_timestamp_ms": if born == 0 { Value::Null } else { json!(born * 1000) },
        "store_timestamp_ms": null, "message_type": message_type, "received_at_ms": now_ms(),
    });
    match line {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

async fn simple_consume(a: &Args) -> i32 {
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .unwrap_or_else(|e| die(&format!("cannot watch SIGTERM: {e}")));
    let mut option = SimpleConsumerOption::default();
    option.set_consumer_group(a.group.clone().unwrap_or_default());
    option.set_topics(vec![a.topic.clone()]);
    let started = match SimpleConsumer::new(option, client_option(a)) {
        Ok(mut consumer) => consumer.start().await.map(|_| consumer),
        Err(e) => Err(e),
    };
    let consumer = match started {
        Ok(c) => c,
        Err(e) => {
            emit(json!({"ok": false, "stage": "startup", "error": describe(&e)}));
            emit(json!({"done": true, "received": 0, "errors": 1}));
            return 0;
        }
    };
    emit(json!({"ready": true, "at_ms": now_ms()}));
    let filter = match &a.sql {
        Some(sql) => FilterExpression::new(FilterType::Sql, sql.clone()),
        None => FilterExpression::new(
            FilterType::Tag,
            a.tag_expression.clone().unwrap_or_else(|| "*".into()),
        ),
    };
    let expect = a.expect.unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs_f64(a.timeout.unwrap_or(0.0).max(0.0));
    let mut stop_at = deadline;
    let mut lingering = false;
    let (mut received, mut errors) = (0usize, 0usize);
    let invisible = Duration::from_secs(a.invisible_s);
    'receiving: while Instant::now() < stop_at {
        // The client's receive long-polls (the server holds it up to 20 s): stop it at the deadline or on SIGTERM.
        let batch = tokio::select! {
            batch = consumer.receive_with(a.topic.clone(), &filter, a.batch, invisible) => batch,
            _ = tokio::time::sleep_until(stop_at.into()) => break 'receiving,
            _ = sigterm.recv() => break 'receiving,
        };
        let messages = match batch {
            Ok(messages) => messages,
            Err(e) => {
                errors += 1;
                emit(
                    json!({"ok": false, "stage": "receive", "error": describe(&e), "at_ms": now_ms()}),
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {},
                    _ = sigterm.recv() => break 'receiving,
                }
                continue;
            }
        };
        for mv in messages {
            let mut line = delivery(&mv);
            line.insert("acked".into(), json!(false));
            if !a.no_ack {
                match consumer.ack(&mv).await {
                    Ok(()) => {
                        line.insert("acked".into(), json!(true));
                    }
                    Err(e) => {
                        line.insert("ack_error".into(), json!(describe(&e)));
                    }
                }
            }
            emit(Value::Object(line));
            received += 1;
        }
        if received >= expect && !lingering {
            lingering = true;
            stop_at = stop_at.min(Instant::now() + Duration::from_secs_f64(a.linger.max(0.0)));
        }
    }
    match tokio::time::timeout(Duration::from_secs(15), consumer.shutdown()).await {
        Ok(Err(e)) => eprintln!("driver: shutdown failed: {}", describe(&e)),
        Err(_) => eprintln!("driver: shutdown did not finish within 15 s"),
        Ok(Ok(())) => {}
    }
    emit(json!({"done": true, "received": received, "errors": errors}));
    0
}

fn push_consume() -> i32 {
    emit(json!({"ok": false, "stage": "startup",
        "error": "rocketmq 5.0.0 has no PushConsumer (the crate exports Producer and SimpleConsumer only)"}));
    emit(json!({"done": true, "received": 0, "deliveries": 0}));
    0
}
