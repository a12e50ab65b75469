//! pocketmq compatibility driver for the Rust RocketMQ client (`rocketmq-client-rust`, see Cargo.toml).
//!
//! Subcommands (one JSON object per line on stdout; the client's own log goes to stderr):
//!
//! * `produce --namesrv ADDR --group G --plan FILE [--batch] [--smart] [--mode sync|async|oneway] [--timeout-ms MS]`
//!   FILE is a JSON array of `{"topic", "body" (base64), "tags"?, "keys"?: [..], "props"?: {..}, "delayLevel"?,
//!   "deliverAfterMs"? (TIMER_DELIVER_MS = send time + this), "orderKey"? (sent with a queue selector: the same key
//!   always picks the same queue)}`. Without `--batch` every message is sent in order, printing
//!   `{"event":"sent","index",...}` per message (sync: the send result; async: from the send callback, in completion
//!   order; oneway: no result); with `--batch` all of them go out as one batch (one `sent` line with
//!   `"batch":true`). `--smart` sets the client's `org.apache.rocketmq.client.sendSmartMsg` switch (single sends as
//!   code 310 instead of 10).
//! * `consume --namesrv ADDR --topic T --group G [--expr EXPR [--expr-type TAG|SQL92]] --expect N --timeout S
//!   [--linger S] [--model clustering|broadcasting] [--orderly] [--from first|last] [--max-reconsume N]
//!   [--reply] [--fail] [--stop-file PATH]`
//!   push consumer (clustering, from the first offset by default), printing `{"event":"received",...}` per
//!   delivery and `{"event":"allocation","topic","queues"}` after each rebalance that changed its queues; it exits
//!   after N deliveries plus the linger (to catch duplicates), or when the stop file exists
//!   (then N is ignored), or after the timeout, with a `{"event":"summary","received","expected","timedOut"}` line.
//!   `--fail`: a message whose user property `pmqFailTimes` is F gets RECONSUME_LATER while its reconsume times
//!   are below F.
//!   `--reply`: every message is answered with a reply message (request-reply), body `reply:` + request body.
//! * `produce` and `consume` also take `--access-key AK --secret-key SK`: ACL 1.0 credentials (the client's
//!   `AclClientRPCHook`).
//! * `txproduce --namesrv ADDR --group G --plan FILE [--wait-checks-ms MS] [--stay-ms MS]` transaction producer
//!   (it stays at least MS after its sends, answering checks); plan entries are
//!   messages as for `produce` plus `"name"`, `"local"`: commit|rollback|unknown and `"checks"`: the answers to
//!   the broker's checks, in order (then unknown). Prints `local`, `sent` and `check` lines; waits for the
//!   planned checks (or prints `checks-missing`).
//! * `request --namesrv ADDR --group G --plan FILE [--timeout-ms MS]` request-reply: `reply` line per message.
//! * `pull --namesrv ADDR --topic T --group G [--expr EXPR] --expect N --timeout S [--linger S]` lite pull consumer
//!   (subscribe, poll, commit_sync after every poll), printing `received` lines and a summary.
//! * `query --namesrv ADDR --group G --topic T [--key K] [--offset-msg-id ID]` query by key and by offset
//!   message id (view), printing `found` lines (with `"by":"key"|"id"`).
//!
//! All print `{"event":"ready"}` once the client has started and `{"event":"done"}` before a clean exit;
//! a client error prints `{"event":"error","stage","error"}` and exits with status 1.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rocketmq_client_rust::{
    AclClientRPCHook, ClientError, ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    ConsumeOrderlyContext, ConsumeOrderlyStatus, DefaultLitePullConsumer,
    DefaultMQProducer, DefaultMQPushConsumer, LocalTransactionState, MQPushConsumer, MessageQueueListener, MessageSelector, MessageUtil,
    SessionCredentials, TransactionListener, TransactionMQProducer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_queue::MessageQueue;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::common::message::MessageTrait;
use rocketmq_model::result::SendResult;
use rocketmq_protocol::protocol::heartbeat::message_model::MessageModel;
use rocketmq_runtime::RuntimeOwner;
use serde_json::{json, Map, Value};

type Fallible<T> = Result<T, String>;

fn emit(value: Value) {
    // println! takes the stdout lock for the whole line, so lines from listener threads never interleave.
    println!("{value}");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const FLAGS: &[&str] = &["batch", "smart", "orderly", "reply", "fail"];

struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Fallible<Self> {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {flag}"))?;
            if FLAGS.contains(&name) {
                map.insert(name.to_string(), "true".to_string());
                continue;
            }
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            map.insert(name.to_string(), value.clone());
        }
        Ok(Args(map))
    }

    fn get(&self, name: &str) -> Fallible<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required"))
    }

    fn get_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.0.get(name).map(String::as_str).unwrap_or(default)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    fn num(&self, name: &str, default: f64) -> Fallible<f64> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: not a number: {v}")),
        }
    }
}

fn main() -> ExitCode {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = raw.split_first() else {
        eprintln!("usage: driver produce|consume|txproduce|request|pull|query --namesrv ADDR ...");
        return ExitCode::from(2);
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            emit(json!({"event": "error", "stage": "args", "error": e}));
            return ExitCode::from(2);
        }
    };
    if args.has("smart") {
        // Read once by the client (a LazyLock) on its first send: request code 310 (SEND_MESSAGE_V2) instead of 10.
        std::env::set_var("org.apache.rocketmq.client.sendSmartMsg", "true");
    }
    match run(command, &args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            emit(json!({"event": "error", "stage": command, "error": e}));
            ExitCode::from(1)
        }
    }
}

/// Owns the Tokio runtime, the client's log subscriber (stderr) and the shared client runtime around one command.
fn run(command: &str, args: &Args) -> Fallible<()> {
    let owner = RuntimeOwner::new().map_err(|e| format!("runtime: {e}"))?;
    let mut telemetry = rocketmq_observability::TelemetryBootstrapConfig::default();
    telemetry.logging.console.ansi = false;
    telemetry.logging.filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    let telemetry = rocketmq_observability::install_global(&telemetry)
        .map_err(|e| format!("telemetry: {e}"))?;
    let client_runtime = ClientRuntime::try_new(
        owner.root_context().component("pocketmq-compat"),
        ClientRuntimeConfig::default(),
        telemetry.handle(),
    )
    .map_err(|e| format!("client runtime: {e}"))?;
    let result = owner.block_on(async {
        let rt = client_runtime.clone();
        match command {
            "produce" => produce(rt, args).await,
            "consume" => consume(rt, args).await,
            "txproduce" => txproduce(rt, args).await,
            "request" => request(rt, args).await,
            "pull" => pull(rt, args).await,
            "query" => query(rt, args).await,
            other => Err(format!("unknown command {other}")),
        }
    });
    let report = owner.block_on(client_runtime.shutdown());
    if !report.is_healthy() {
        eprintln!("client runtime shutdown report: {}", report.to_json());
    }
    drop(client_runtime);
    if let Err(e) = owner.shutdown_runtime_blocking_with_timeout(Duration::from_secs(5)) {
        eprintln!("runtime shutdown: {e}");
    }
    let _ = telemetry.shutdown();
    result?;
    emit(json!({"event": "done"}));
    Ok(())
}

// --------------------------------------------------------------------------------------------------- produce

fn read_plan(args: &Args) -> Fallible<Vec<Value>> {
    let plan_path = args.get("plan")?;
    let plan: Value =
        serde_json::from_slice(&std::fs::read(plan_path).map_err(|e| format!("{plan_path}: {e}"))?)
            .map_err(|e| format!("{plan_path}: {e}"))?;
    plan.as_array()
        .cloned()
        .ok_or_else(|| "the plan is not a JSON array".to_string())
}

/// The message of plan entry `index`; a `deliverAfterMs` is counted from now (so build right before sending).
fn build_message(index: usize, spec: &Value) -> Fallible<Message> {
    let field = |name: &str| spec.get(name).and_then(Value::as_str);
    let topic = field("topic").ok_or_else(|| format!("message {index}: no topic"))?;
    let body = B64
        .decode(field("body").unwrap_or(""))
        .map_err(|e| format!("message {index}: body: {e}"))?;
    let mut builder = Message::builder().topic(topic).body(body);
    if let Some(tags) = field("tags") {
        builder = builder.tags(tags);
    }
    if let Some(keys) = spec.get("keys").and_then(Value::as_array) {
        let keys: Vec<String> = keys
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        builder = builder.keys(keys);
    }
    if let Some(level) = spec.get("delayLevel").and_then(Value::as_i64) {
        builder = builder.delay_level(level as i32);
    }
    if let Some(after) = spec.get("deliverAfterMs").and_then(Value::as_u64) {
        builder = builder.deliver_time_ms(now_ms() + after);
    }
    if let Some(props) = spec.get("props").and_then(Value::as_object) {
        for (name, value) in props {
            let value = value
                .as_str()
                .ok_or_else(|| format!("message {index}: property {name} is not a string"))?;
            builder = builder
                .raw_property(name.as_str(), value)
                .map_err(|e| format!("message {index}: {e}"))?;
        }
    }
    builder.build().map_err(|e| format!("message {index}: {e}"))
}

fn send_result_json(result: &SendResult) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("status".into(), json!(format!("{:?}", result.send_status)));
    out.insert(
        "msgId".into(),
        json!(result.msg_id.as_ref().map(|m| m.as_str())),
    );
    out.insert("offsetMsgId".into(), json!(result.offset_msg_id));
    out.insert("queueOffset".into(), json!(result.queue_offset));
    out.insert("transactionId".into(), json!(result.transaction_id));
    if let Some(mq) = &result.message_queue {
        out.insert("topic".into(), json!(mq.topic().as_str()));
        out.insert("brokerName".into(), json!(mq.broker_name().as_str()));
        out.insert("queueId".into(), json!(mq.queue_id()));
    }
    out
}

fn key_hash(key: &str) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish() as usize
}

/// The queue selector of ordered sends: one key, one queue (as long as the topic's queues do not change).
fn select_by_key(mqs: &[MessageQueue], _msg: &Message, key: &String) -> Option<MessageQueue> {
    (!mqs.is_empty()).then(|| mqs[key_hash(key) % mqs.len()].clone())
}

fn sent_line(index: usize, result: Option<&SendResult>, sent_at: u64, started: Instant) -> Value {
    let mut line = result.map(send_result_json).unwrap_or_default();
    line.insert("event".into(), json!("sent"));
    line.insert("index".into(), json!(index));
    line.insert("sentAt".into(), json!(sent_at));
    line.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
    Value::Object(line)
}

/// ACL 1.0 credentials (`--access-key AK --secret-key SK`, produce and consume): the client's AclClientRPCHook.
fn acl_hook(args: &Args) -> Fallible<Option<Arc<AclClientRPCHook>>> {
    if !args.has("access-key") {
        return Ok(None);
    }
    let credentials = SessionCredentials::with_keys(args.get("access-key")?.to_string(), args.get("secret-key")?.to_string());
    Ok(Some(Arc::new(AclClientRPCHook::new(credentials))))
}

async fn produce(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let specs = read_plan(args)?;
    let timeout_ms = args.num("timeout-ms", 15000.0)? as u64;
    let mode = args.get_or("mode", "sync");

    let mut builder = DefaultMQProducer::builder(client_runtime)
        .producer_group(args.get("group")?.to_string())
        .name_server_addr(args.get("namesrv")?.to_string());
    if let Some(hook) = acl_hook(args)? {
        builder = builder.rpc_hook(hook);
    }
    let mut producer = builder.build();
    producer
        .start()
        .await
        .map_err(|e| format!("producer start: {e}"))?;
    emit(json!({"event": "ready"}));

    let outcome = async {
        if args.has("batch") {
            let messages = specs
                .iter()
                .enumerate()
                .map(|(i, s)| build_message(i, s))
                .collect::<Fallible<Vec<_>>>()?;
            let count = messages.len();
            let started = Instant::now();
            let result = producer
                .send_batch_with_timeout(messages, timeout_ms)
                .await
                .map_err(|e| format!("batch send of {count} messages: {e}"))?;
            let mut line = send_result_json(&result);
            line.insert("event".into(), json!("sent"));
            line.insert("batch".into(), json!(true));
            line.insert("count".into(), json!(count));
            line.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
            emit(Value::Object(line));
            return Ok(());
        }
        let callbacks = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(AtomicUsize::new(0));
        for (index, spec) in specs.iter().enumerate() {
            let message = build_message(index, spec)?;
            let order_key = spec.get("orderKey").and_then(Value::as_str).map(str::to_string);
            let started = Instant::now();
            let sent_at = now_ms();
            match (mode, order_key) {
                ("sync", Some(key)) => {
                    let result = producer
                        .send_with_selector_timeout(message, select_by_key, key.clone(), timeout_ms)
                        .await
                        .map_err(|e| format!("send of message {index}: {e}"))?
                        .ok_or_else(|| format!("send of message {index}: no send result"))?;
                    let mut line = sent_line(index, Some(&result), sent_at, started);
                    line["orderKey"] = json!(key);
                    emit(line);
                }
                ("sync", None) => {
                    let result = producer
                        .send_with_timeout(message, timeout_ms)
                        .await
                        .map_err(|e| format!("send of message {index}: {e}"))?
                        .ok_or_else(|| format!("send of message {index}: no send result"))?;
                    emit(sent_line(index, Some(&result), sent_at, started));
                }
                ("async", None) => {
                    let (done, failed) = (callbacks.clone(), failures.clone());
                    let callback = move |result: Option<&SendResult>, error: Option<&ClientError>| {
                        let mut line = sent_line(index, result, sent_at, started);
                        line["async"] = json!(true);
                        if let Some(e) = error {
                            line["event"] = json!("send-error");
                            line["error"] = json!(e.to_string());
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                        emit(line);
                        done.fetch_add(1, Ordering::SeqCst);
                    };
                    producer
                        .send_with_callback_timeout(message, callback, timeout_ms)
                        .await
                        .map_err(|e| format!("async send of message {index}: {e}"))?;
                }
                ("oneway", None) => {
                    producer
                        .send_oneway(message)
                        .await
                        .map_err(|e| format!("oneway send of message {index}: {e}"))?;
                    let mut line = sent_line(index, None, sent_at, started);
                    line["oneway"] = json!(true);
                    emit(line);
                }
                (other, key) => return Err(format!("mode {other} with orderKey {key:?} is not supported")),
            }
        }
        if mode == "async" {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms + 5000);
            while callbacks.load(Ordering::SeqCst) < specs.len() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let (done, failed) = (callbacks.load(Ordering::SeqCst), failures.load(Ordering::SeqCst));
            if done < specs.len() || failed > 0 {
                return Err(format!("async sends: {done} of {} callbacks, {failed} failed", specs.len()));
            }
        }
        Ok::<(), String>(())
    }
    .await;
    producer.shutdown().await;
    outcome
}

// --------------------------------------------------------------------------------------------------- consume

fn prop<'a>(msg: &'a dyn MessageTrait, name: &str) -> Option<&'a str> {
    msg.get_properties()
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .map(|(_, v)| v.as_str())
}

fn props_json(msg: &dyn MessageTrait) -> Map<String, Value> {
    msg.get_properties()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.as_str())))
        .collect()
}

fn received_json(msg: &MessageExt) -> Value {
    let keys: Vec<&str> = prop(msg, "KEYS")
        .map(|k| k.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let body = msg.body().unwrap_or_default();
    json!({
        "event": "received",
        "topic": msg.topic().as_str(),
        "body": B64.encode(&body),
        "bodyLen": body.len(),
        "tags": msg.get_tags().map(|t| t.as_str().to_string()),
        "keys": keys,
        "allProps": props_json(msg),
        "msgId": prop(msg, "UNIQ_KEY").unwrap_or(msg.msg_id().as_str()),
        "extMsgId": msg.msg_id().as_str(),
        "brokerName": msg.broker_name(),
        "queueId": msg.queue_id(),
        "queueOffset": msg.queue_offset(),
        "commitLogOffset": msg.commit_log_offset(),
        "reconsumeTimes": msg.reconsume_times(),
        "sysFlag": msg.sys_flag(),
        "bornHost": msg.born_host().to_string(),
        "storeHost": msg.store_host().to_string(),
        "bornTimestamp": msg.born_timestamp(),
        "storeTimestamp": msg.store_timestamp(),
        "receivedAt": now_ms(),
    })
}

/// Whether the consumer still wants this delivery to fail (user property `pmqFailTimes`).
fn should_fail(msg: &MessageExt) -> bool {
    let fail_times: i32 = prop(msg, "pmqFailTimes").and_then(|v| v.parse().ok()).unwrap_or(0);
    msg.reconsume_times() < fail_times
}

fn consume_from(args: &Args) -> Fallible<ConsumeFromWhere> {
    match args.get_or("from", "first") {
        "first" => Ok(ConsumeFromWhere::ConsumeFromFirstOffset),
        "last" => Ok(ConsumeFromWhere::ConsumeFromLastOffset),
        other => Err(format!("--from {other}: first or last")),
    }
}

/// Prints the queues the consumer holds after every rebalance that changed them (`allocation` lines).
struct AllocationPrinter;

impl MessageQueueListener for AllocationPrinter {
    fn message_queue_changed(&self, topic: &str, mq_all: &HashSet<MessageQueue>, mq_assigned: &HashSet<MessageQueue>) {
        let mut queues: Vec<i32> = mq_assigned.iter().map(|mq| mq.queue_id()).collect();
        queues.sort_unstable();
        emit(json!({"event": "allocation", "topic": topic, "queues": queues, "all": mq_all.len(), "time": now_ms()}));
    }
}

async fn consume(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let topic = args.get("topic")?.to_string();
    let group = args.get("group")?.to_string();
    let namesrv = args.get("namesrv")?.to_string();
    let expr = args.get_or("expr", "*").to_string();
    let expect = args.num("expect", 0.0)? as usize;
    let timeout = Duration::from_secs_f64(args.num("timeout", 60.0)?);
    let linger = Duration::from_secs_f64(args.num("linger", 1.0)?);
    let stop_file = args.0.get("stop-file").map(Path::new);
    let model = match args.get_or("model", "clustering") {
        "clustering" => MessageModel::Clustering,
        "broadcasting" => MessageModel::Broadcasting,
        other => return Err(format!("--model {other}: clustering or broadcasting")),
    };

    let mut builder = DefaultMQPushConsumer::builder(client_runtime.clone())
        .consumer_group(group.clone())
        .name_server_addr(namesrv.clone())
        .message_model(model)
        .message_queue_listener(Some(Arc::new(AllocationPrinter)))
        .consume_from_where(consume_from(args)?);
    if let Some(hook) = acl_hook(args)? {
        builder = builder.rpc_hook(Some(hook));
    }
    if args.has("max-reconsume") {
        builder = builder.max_reconsume_times(args.num("max-reconsume", 16.0)? as i32);
    }
    let mut consumer = builder.build();
    let mut replier = if args.has("reply") {
        let mut p = DefaultMQProducer::builder(client_runtime)
            .producer_group(format!("{group}-replier"))
            .name_server_addr(namesrv)
            .build();
        p.start().await.map_err(|e| format!("reply producer start: {e}"))?;
        Some(p)
    } else {
        None
    };
    let (requests_tx, requests_rx) = mpsc::channel::<Message>();
    let requests_tx = Mutex::new(requests_tx);
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let reply = replier.is_some();
    let fail = args.has("fail");
    let outcome = async {
        match args.get_or("expr-type", "TAG") {
            "TAG" => consumer.subscribe(topic.as_str(), expr.as_str()).await,
            "SQL92" => {
                consumer
                    .subscribe_with_selector(topic.as_str(), Some(MessageSelector::by_sql(expr.as_str())))
                    .await
            }
            other => return Err(format!("--expr-type {other}: TAG or SQL92")),
        }
        .map_err(|e| format!("subscribe: {e}"))?;
        if args.has("orderly") {
            consumer.register_message_listener_orderly(
                move |msgs: &[&MessageExt], _ctx: &mut ConsumeOrderlyContext| {
                    for msg in msgs {
                        emit(received_json(msg));
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(ConsumeOrderlyStatus::Success)
                },
            );
        } else {
            consumer.register_message_listener_concurrently(
                move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
                    let mut status = ConsumeConcurrentlyStatus::ConsumeSuccess;
                    for msg in msgs {
                        let mut line = received_json(msg);
                        if fail && should_fail(msg) {
                            line["status"] = json!("later");
                            status = ConsumeConcurrentlyStatus::ReconsumeLater;
                        } else if reply && prop(*msg, "REPLY_TO_CLIENT").is_some() {
                            let _ = requests_tx.lock().unwrap().send(msg.message.clone());
                        }
                        emit(line);
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(status)
                },
            );
        }
        consumer
            .start()
            .await
            .map_err(|e| format!("consumer start: {e}"))?;
        emit(json!({"event": "ready"}));
        let deadline = Instant::now() + timeout;
        let finished = || match stop_file {
            Some(path) => path.exists(),
            None => received.load(Ordering::SeqCst) >= expect,
        };
        // Replies are sent from here (the listener is synchronous) until the end of the linger.
        let mut linger_end: Option<Instant> = None;
        loop {
            if let Some(p) = replier.as_ref() {
                while let Ok(request) = requests_rx.try_recv() {
                    send_reply(p, &request).await;
                }
            }
            let now = Instant::now();
            if now >= deadline || linger_end.is_some_and(|end| now >= end) {
                break;
            }
            if linger_end.is_none() && finished() {
                if stop_file.is_some() {
                    break;
                }
                linger_end = Some(now + linger);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<bool, String>(finished())
    }
    .await;
    consumer.shutdown().await;
    if let Some(p) = replier.as_mut() {
        p.shutdown().await;
    }
    let finished = outcome?;
    let count = received.load(Ordering::SeqCst);
    emit(
        json!({"event": "summary", "received": count, "expected": expect, "timedOut": !finished}),
    );
    Ok(())
}

async fn send_reply(producer: &DefaultMQProducer, request: &Message) {
    let mut body = b"reply:".to_vec();
    body.extend_from_slice(request.get_body().map(|b| b.as_ref()).unwrap_or_default());
    let outcome = match MessageUtil::create_reply_message(request, &body) {
        Ok(reply) => {
            let line = json!({"event": "replied", "topic": reply.topic().as_str(), "props": props_json(&reply)});
            producer.send_with_timeout(reply, 5000).await.map(|_| line)
        }
        Err(e) => Err(e),
    };
    match outcome {
        Ok(line) => emit(line),
        Err(e) => emit(json!({"event": "reply-error", "error": e.to_string()})),
    }
}

// ------------------------------------------------------------------------------------------------ transactions

struct PlannedTx {
    local: String,
    checks: Mutex<VecDeque<String>>,
}

struct TxListener {
    plan: HashMap<String, PlannedTx>,
    checks_left: Arc<AtomicUsize>,
}

fn tx_state(answer: &str) -> LocalTransactionState {
    match answer {
        "commit" => LocalTransactionState::CommitMessage,
        "rollback" => LocalTransactionState::RollbackMessage,
        _ => LocalTransactionState::Unknown,
    }
}

impl TransactionListener for TxListener {
    fn execute_local_transaction(
        &self,
        msg: &dyn MessageTrait,
        _arg: Option<&(dyn std::any::Any + Send + Sync)>,
    ) -> LocalTransactionState {
        let name = prop(msg, "pmqName").unwrap_or_default().to_string();
        let local = self.plan.get(&name).map(|p| p.local.as_str()).unwrap_or("unknown");
        emit(json!({
            "event": "local", "name": name, "state": local, "time": now_ms(),
            "transactionId": msg.transaction_id().map(|t| t.as_str()),
            "uniqKey": prop(msg, "UNIQ_KEY"),
        }));
        tx_state(local)
    }

    fn check_local_transaction(&self, msg: &MessageExt) -> LocalTransactionState {
        let name = prop(msg, "pmqName").unwrap_or_default().to_string();
        let answer = self
            .plan
            .get(&name)
            .and_then(|p| {
                let answer = p.checks.lock().unwrap().pop_front();
                if answer.is_some() {
                    self.checks_left.fetch_sub(1, Ordering::SeqCst);
                }
                answer
            })
            .unwrap_or_else(|| "unknown".to_string());
        let mut line = received_json(msg);
        line["event"] = json!("check");
        line["name"] = json!(name);
        line["answer"] = json!(answer);
        line["transactionId"] = json!(msg.get_transaction_id().map(|t| t.as_str()));
        line["time"] = json!(now_ms());
        emit(line);
        tx_state(&answer)
    }
}

async fn txproduce(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let specs = read_plan(args)?;
    let wait_checks = Duration::from_millis(args.num("wait-checks-ms", 30000.0)? as u64);
    let stay = Duration::from_millis(args.num("stay-ms", 0.0)? as u64);
    let mut plan = HashMap::new();
    let mut planned_checks = 0;
    for (i, spec) in specs.iter().enumerate() {
        let name = spec.get("name").and_then(Value::as_str).ok_or(format!("entry {i}: no name"))?;
        let checks: VecDeque<String> = spec
            .get("checks")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default();
        planned_checks += checks.len();
        let local = spec.get("local").and_then(Value::as_str).unwrap_or("commit").to_string();
        plan.insert(name.to_string(), PlannedTx { local, checks: Mutex::new(checks) });
    }
    let checks_left = Arc::new(AtomicUsize::new(planned_checks));
    let listener = TxListener { plan, checks_left: checks_left.clone() };

    let mut producer = TransactionMQProducer::builder(client_runtime)
        .producer_group(args.get("group")?.to_string())
        .name_server_addr(args.get("namesrv")?.to_string())
        .transaction_listener(listener)
        .build();
    producer
        .start()
        .await
        .map_err(|e| format!("producer start: {e}"))?;
    emit(json!({"event": "ready"}));

    let outcome = async {
        for (index, spec) in specs.iter().enumerate() {
            if spec.get("send").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let name = spec["name"].as_str().unwrap_or_default();
            let mut message = build_message(index, spec)?;
            message
                .put_user_property("pmqName".into(), name.into())
                .map_err(|e| format!("{name}: {e}"))?;
            let started = Instant::now();
            let sent_at = now_ms();
            let result = producer
                .send_message_in_transaction::<(), _>(message, None)
                .await
                .map_err(|e| format!("transaction send of {name}: {e}"))?;
            let mut line = sent_line(index, result.send_result.as_ref(), sent_at, started);
            line["name"] = json!(name);
            line["state"] = json!(format!("{:?}", result.local_transaction_state));
            emit(line);
        }
        let sent = Instant::now();
        let deadline = sent + wait_checks;
        while (checks_left.load(Ordering::SeqCst) > 0 || sent.elapsed() < stay) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = checks_left.load(Ordering::SeqCst);
        if left > 0 {
            emit(json!({"event": "checks-missing", "left": left}));
        }
        // Let the last check's END_TRANSACTION (oneway) leave before the producer closes its connection.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<(), String>(())
    }
    .await;
    producer.shutdown().await;
    outcome
}

// ------------------------------------------------------------------------------------------------ request-reply

async fn request(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let specs = read_plan(args)?;
    let timeout_ms = args.num("timeout-ms", 10000.0)? as u64;
    let mut producer = DefaultMQProducer::builder(client_runtime)
        .producer_group(args.get("group")?.to_string())
        .name_server_addr(args.get("namesrv")?.to_string())
        .build();
    producer
        .start()
        .await
        .map_err(|e| format!("producer start: {e}"))?;
    emit(json!({"event": "ready"}));
    let outcome = async {
        for (index, spec) in specs.iter().enumerate() {
            let message = build_message(index, spec)?;
            let started = Instant::now();
            let reply = producer
                .request(message, timeout_ms)
                .await
                .map_err(|e| format!("request {index}: {e}"))?;
            let body = reply.get_body().map(|b| b.to_vec()).unwrap_or_default();
            emit(json!({
                "event": "reply", "index": index, "topic": reply.topic().as_str(), "body": B64.encode(&body),
                "props": props_json(reply.as_ref()), "ms": started.elapsed().as_millis() as u64,
            }));
        }
        Ok::<(), String>(())
    }
    .await;
    producer.shutdown().await;
    outcome
}

// ------------------------------------------------------------------------------------------------ lite pull

async fn pull(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let topic = args.get("topic")?.to_string();
    let expr = args.get_or("expr", "*").to_string();
    let expect = args.num("expect", 0.0)? as usize;
    let timeout = Duration::from_secs_f64(args.num("timeout", 60.0)?);
    let linger = Duration::from_secs_f64(args.num("linger", 1.0)?);
    let consumer = DefaultLitePullConsumer::builder(client_runtime)
        .consumer_group(args.get("group")?.to_string())
        .name_server_addr(args.get("namesrv")?.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .auto_commit(false)
        // Long polls held by the broker at most 2 s (default 20 s): shutdown waits for the one in flight.
        .broker_suspend_max_time_millis(2000)
        .consumer_timeout_millis_when_suspend(5000)
        .build()
        .map_err(|e| format!("lite pull consumer: {e}"))?;
    let mut count = 0;
    let outcome = async {
        consumer
            .subscribe_with_expression(topic.as_str(), expr.as_str())
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        consumer.start().await.map_err(|e| format!("consumer start: {e}"))?;
        emit(json!({"event": "ready"}));
        let deadline = Instant::now() + timeout;
        let mut linger_end: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= deadline || linger_end.is_some_and(|end| now >= end) {
                break;
            }
            let messages = consumer.poll_with_timeout(500).await;
            for msg in &messages {
                emit(received_json(msg));
            }
            count += messages.len();
            if !messages.is_empty() {
                consumer.commit_sync().await;
            }
            if count >= expect && linger_end.is_none() {
                linger_end = Some(Instant::now() + linger);
            }
        }
        Ok::<(), String>(())
    }
    .await;
    consumer.shutdown().await;
    outcome?;
    emit(json!({"event": "summary", "received": count, "expected": expect, "timedOut": count < expect}));
    Ok(())
}

// ------------------------------------------------------------------------------------------------ query

async fn query(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let topic = args.get("topic")?.to_string();
    let mut producer = DefaultMQProducer::builder(client_runtime)
        .producer_group(args.get("group")?.to_string())
        .name_server_addr(args.get("namesrv")?.to_string())
        .build();
    producer
        .start()
        .await
        .map_err(|e| format!("producer start: {e}"))?;
    emit(json!({"event": "ready"}));
    let outcome = async {
        if let Some(key) = args.0.get("key") {
            let result = producer
                .query_message(&topic, key, 64, 0, i64::MAX as u64)
                .await
                .map_err(|e| format!("query by key {key}: {e}"))?;
            for msg in result.message_list() {
                let mut line = received_json(msg);
                line["event"] = json!("found");
                line["by"] = json!("key");
                emit(line);
            }
        }
        if let Some(id) = args.0.get("offset-msg-id") {
            let msg = producer
                .view_message(&topic, id)
                .await
                .map_err(|e| format!("view message {id}: {e}"))?;
            let mut line = received_json(&msg);
            line["event"] = json!("found");
            line["by"] = json!("id");
            emit(line);
        }
        Ok::<(), String>(())
    }
    .await;
    producer.shutdown().await;
    outcome
}
