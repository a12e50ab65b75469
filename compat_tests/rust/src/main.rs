//! pocketmq compatibility driver for the Rust RocketMQ client (`rocketmq-client-rust`, see Cargo.toml).
//!
//! Subcommands (one JSON object per line on stdout; the client's own log goes to stderr):
//!
//! * `produce --namesrv ADDR --group G --plan FILE [--batch] [--smart] [--timeout-ms MS]`
//!   FILE is a JSON array of `{"topic", "body" (base64), "tags"?, "keys"?: [..], "props"?: {..}}`. Without
//!   `--batch` every message is sent synchronously, in order, printing `{"event":"sent","index",...}` per message;
//!   with `--batch` all of them go out as one batch (one `sent` line with `"batch":true`). `--smart` sets the
//!   client's `org.apache.rocketmq.client.sendSmartMsg` switch (single sends as code 310 instead of 10).
//! * `consume --namesrv ADDR --topic T --group G [--expr EXPR] --expect N --timeout S [--linger S]`
//!   push consumer (clustering, from the first offset), printing `{"event":"received",...}` per message; it exits
//!   after N messages plus the linger (to catch duplicates), or after the timeout, with a
//!   `{"event":"summary","received","expected","timedOut"}` line.
//!
//! Both print `{"event":"ready"}` once the client has started and `{"event":"done"}` before a clean exit;
//! a client error prints `{"event":"error","stage","error"}` and exits with status 1.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rocketmq_client_rust::{
    ClientRuntime, ClientRuntimeConfig, ConsumeConcurrentlyContext, ConsumeConcurrentlyStatus,
    DefaultMQProducer, DefaultMQPushConsumer, MQPushConsumer,
};
use rocketmq_model::common::consumer::consume_from_where::ConsumeFromWhere;
use rocketmq_model::common::message::message_ext::MessageExt;
use rocketmq_model::common::message::message_single::Message;
use rocketmq_model::result::SendResult;
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

struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Fallible<Self> {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("unexpected argument {flag}"))?;
            if name == "batch" || name == "smart" {
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
        eprintln!("usage: driver produce|consume --namesrv ADDR ...");
        return ExitCode::from(2);
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            emit(json!({"event": "error", "stage": "args", "error": e}));
            return ExitCode::from(2);
        }
    };
    if args.0.contains_key("smart") {
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
        match command {
            "produce" => produce(client_runtime.clone(), args).await,
            "consume" => consume(client_runtime.clone(), args).await,
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
    if let Some(mq) = &result.message_queue {
        out.insert("topic".into(), json!(mq.topic().as_str()));
        out.insert("brokerName".into(), json!(mq.broker_name().as_str()));
        out.insert("queueId".into(), json!(mq.queue_id()));
    }
    out
}

async fn produce(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let plan_path = args.get("plan")?;
    let plan: Value =
        serde_json::from_slice(&std::fs::read(plan_path).map_err(|e| format!("{plan_path}: {e}"))?)
            .map_err(|e| format!("{plan_path}: {e}"))?;
    let specs = plan.as_array().ok_or("the plan is not a JSON array")?;
    let messages = specs
        .iter()
        .enumerate()
        .map(|(i, s)| build_message(i, s))
        .collect::<Fallible<Vec<_>>>()?;
    let timeout_ms = args.num("timeout-ms", 15000.0)? as u64;

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
        if args.0.contains_key("batch") {
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
        } else {
            for (index, message) in messages.into_iter().enumerate() {
                let started = Instant::now();
                let result = producer
                    .send_with_timeout(message, timeout_ms)
                    .await
                    .map_err(|e| format!("send of message {index}: {e}"))?
                    .ok_or_else(|| format!("send of message {index}: no send result"))?;
                let mut line = send_result_json(&result);
                line.insert("event".into(), json!("sent"));
                line.insert("index".into(), json!(index));
                line.insert("ms".into(), json!(started.elapsed().as_millis() as u64));
                emit(Value::Object(line));
            }
        }
        Ok::<(), String>(())
    }
    .await;
    producer.shutdown().await;
    outcome
}

// --------------------------------------------------------------------------------------------------- consume

fn received_json(msg: &MessageExt) -> Value {
    let props: Map<String, Value> = msg
        .properties()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.as_str())))
        .collect();
    let prop = |name: &str| {
        msg.properties()
            .iter()
            .find(|(k, _)| k.as_str() == name)
            .map(|(_, v)| v.as_str())
    };
    let keys: Vec<&str> = prop("KEYS")
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
        "allProps": props,
        "msgId": prop("UNIQ_KEY").unwrap_or(msg.msg_id().as_str()),
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

async fn consume(client_runtime: Arc<ClientRuntime>, args: &Args) -> Fallible<()> {
    let topic = args.get("topic")?.to_string();
    let expr = args.get_or("expr", "*").to_string();
    let expect = args.num("expect", 0.0)? as usize;
    let timeout = Duration::from_secs_f64(args.num("timeout", 60.0)?);
    let linger = Duration::from_secs_f64(args.num("linger", 1.0)?);

    let mut consumer = DefaultMQPushConsumer::builder(client_runtime)
        .consumer_group(args.get("group")?.to_string())
        .name_server_addr(args.get("namesrv")?.to_string())
        .consume_from_where(ConsumeFromWhere::ConsumeFromFirstOffset)
        .build();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let outcome = async {
        consumer
            .subscribe(topic.as_str(), expr.as_str())
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        consumer.register_message_listener_concurrently(
            move |msgs: &[&MessageExt], _ctx: &ConsumeConcurrentlyContext| {
                for msg in msgs {
                    emit(received_json(msg));
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Ok(ConsumeConcurrentlyStatus::ConsumeSuccess)
            },
        );
        consumer
            .start()
            .await
            .map_err(|e| format!("consumer start: {e}"))?;
        emit(json!({"event": "ready"}));
        let deadline = Instant::now() + timeout;
        while received.load(Ordering::SeqCst) < expect && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if received.load(Ordering::SeqCst) >= expect {
            tokio::time::sleep(linger).await;
        }
        Ok::<(), String>(())
    }
    .await;
    consumer.shutdown().await;
    outcome?;
    let count = received.load(Ordering::SeqCst);
    emit(
        json!({"event": "summary", "received": count, "expected": expect, "timedOut": count < expect}),
    );
    Ok(())
}
