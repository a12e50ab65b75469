// Scenario driver for the official RocketMQ 5.x Go client (github.com/apache/rocketmq-clients/golang/v5, gRPC).
// A JSON-lines CLI: stdout carries only JSON lines; the client's log goes to files under --log-dir (its
// rocketmq.client.logRoot); --console-log sends it to stdout instead (the client's only console), for debugging only.
//
//	produce        --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction]
//	               [--commit|--rollback|--no-end] [--linger S]
//	simple-consume --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
//	               [--invisible-s 15] [--await-s 5] [--batch 16] [--linger S] [--no-ack]
//	push-consume   --endpoints --topic --group [--tag-expression EXPR | --sql EXPR] --expect N --timeout S
//	               [--fail-first | --fail-always] [--threads 4] [--linger S]
//	every command: [--plaintext|--tls] [--request-timeout-ms MS] [--log-dir DIR] [--console-log]
//
// produce: one JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...},
// "message_group", "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end":
// "commit"|"rollback"|"none", "recall": true}. Prints per message, in input order, {"ok": true, "index",
// "message_id", "sent_at_ms", "offset", ["transaction_id"], "recall_handle" (null: none), ["delivery_timestamp_ms"],
// ["end"]} or {"ok": false, "index", ["stage": "startup"], "error"}; per transaction check {"check": true,
// "message_id", "resolution", "at_ms"}; then {"done": true, "sent", "failed"}. The transaction checker answers from
// the user property pmqCheck (COMMIT, ROLLBACK, else UNKNOWN). "recall": true recalls the message once its send
// succeeded (Producer.Recall with the topic and the receipt's recall handle); its send line then also carries
// "recalled": true and "recalled_message_id", or "recalled": false and "recall_error".
//
// simple-consume / push-consume (SimpleConsumer Receive + Ack / PushConsumer with a FuncMessageListener), as the
// commands of compat_tests/python5/driver.py: {"ready": true, "at_ms"} once the client started, then one line per
// delivery {"message_id", "topic", "body_b64", "tag", "keys" (sorted), "properties" (the client's user properties),
// "message_group", "delivery_attempt", "delivery_timestamp_ms" (null: none), "born_host", "born_timestamp_ms",
// "store_timestamp_ms" (always null: the client does not expose it), "message_type", "received_at_ms", and "acked"
// (simple; "ack_error" when Ack returned an error) or "result": SUCCESS|FAILURE (push)}; {"ok": false, "stage":
// "startup"|"receive", "error"} on errors (a failed receive is retried after 1 s; the client's MESSAGE_NOT_FOUND
// answer to an empty long poll is an empty batch, not an error); stop at N deliveries (plus --linger seconds), at
// the timeout or on SIGTERM; then {"done": true, "received": n, "errors": e} (push: "received" counts SUCCESS
// answers, "deliveries" all of them). The client's MessageView has no message type: "message_type" is derived from
// what it has (a message group: FIFO, a delivery timestamp: DELAY, else NORMAL), so a TRANSACTION message shows as
// NORMAL. --fail-first answers FAILURE to each message's first delivery, --fail-always to every delivery (N then
// counts deliveries, not SUCCESS answers).
//
// The client's defaults are kept: TLS on, trusting any certificate (its default tls.Config has InsecureSkipVerify);
// --plaintext sets rmq_client.EnableSsl = false.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
	v2 "github.com/apache/rocketmq-clients/golang/v5/protocol/v2"
)

const checkProperty = "pmqCheck"

var outMu sync.Mutex

func emit(obj map[string]any) {
	raw, err := json.Marshal(obj)
	if err != nil {
		raw = []byte(fmt.Sprintf(`{"ok":false,"error":%q}`, err.Error()))
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(raw, '\n'))
}

func nowMs() int64 { return time.Now().UnixMilli() }

type args struct {
	command, endpoints, topic, kind, end, logDir string
	linger                                       float64
	plaintext, consoleLog                        bool
	requestTimeoutMs                             int64
	// consumers
	group, tagExpression, sql    string
	hasSQL                       bool
	expect                       int
	timeout                      float64
	invisibleS, awaitS, batch    int
	noAck, failFirst, failAlways bool
	threads                      int
	hasGroup, hasExpect, hasTmo  bool
}

func die(msg string) {
	fmt.Fprintln(os.Stderr, "driver:", msg)
	os.Exit(2)
}

// Options of one command only: any other command refuses them.
var onlyFor = map[string]string{
	"--kind": "produce", "--commit": "produce", "--rollback": "produce", "--no-end": "produce",
	"--invisible-s": "simple-consume", "--await-s": "simple-consume", "--batch": "simple-consume",
	"--no-ack": "simple-consume", "--fail-first": "push-consume", "--fail-always": "push-consume",
	"--threads": "push-consume",
}

var consumerOnly = map[string]bool{"--group": true, "--tag-expression": true, "--sql": true, "--expect": true, "--timeout": true}

func parse(argv []string) args {
	if len(argv) == 0 || (argv[0] != "produce" && argv[0] != "simple-consume" && argv[0] != "push-consume") {
		die("usage: produce|simple-consume|push-consume --endpoints HOST:PORT --topic T ...")
	}
	a := args{command: argv[0], kind: "normal", end: "commit", requestTimeoutMs: 3000, tagExpression: "*",
		invisibleS: 15, awaitS: 5, batch: 16, threads: 4}
	next := func(i *int) string {
		*i++
		if *i >= len(argv) {
			die("missing value for " + argv[*i-1])
		}
		return argv[*i]
	}
	hasTag := false
	for i := 1; i < len(argv); i++ {
		if cmd, ok := onlyFor[argv[i]]; ok && cmd != a.command {
			die(argv[i] + " does not apply to " + a.command)
		}
		if consumerOnly[argv[i]] && a.command == "produce" {
			die(argv[i] + " does not apply to produce")
		}
		var err error
		switch argv[i] {
		case "--endpoints":
			a.endpoints = next(&i)
		case "--topic":
			a.topic = next(&i)
		case "--kind":
			a.kind = next(&i)
		case "--commit":
			a.end = "commit"
		case "--rollback":
			a.end = "rollback"
		case "--no-end":
			a.end = "none"
		case "--linger":
			a.linger, err = strconv.ParseFloat(next(&i), 64)
		case "--plaintext":
			a.plaintext = true
		case "--tls":
			a.plaintext = false
		case "--request-timeout-ms":
			a.requestTimeoutMs, err = strconv.ParseInt(next(&i), 10, 64)
		case "--log-dir":
			a.logDir = next(&i)
		case "--console-log":
			a.consoleLog = true
		case "--group":
			a.group, a.hasGroup = next(&i), true
		case "--tag-expression":
			a.tagExpression, hasTag = next(&i), true
		case "--sql":
			a.sql, a.hasSQL = next(&i), true
		case "--expect":
			a.expect, err = strconv.Atoi(next(&i))
			a.hasExpect = true
		case "--timeout":
			a.timeout, err = strconv.ParseFloat(next(&i), 64)
			a.hasTmo = true
		case "--invisible-s":
			a.invisibleS, err = strconv.Atoi(next(&i))
		case "--await-s":
			a.awaitS, err = strconv.Atoi(next(&i))
		case "--batch":
			a.batch, err = strconv.Atoi(next(&i))
		case "--no-ack":
			a.noAck = true
		case "--fail-first":
			a.failFirst = true
		case "--fail-always":
			a.failAlways = true
		case "--threads":
			a.threads, err = strconv.Atoi(next(&i))
		default:
			die("unknown argument " + argv[i])
		}
		if err != nil {
			die(err.Error())
		}
	}
	if a.endpoints == "" || a.topic == "" {
		die("--endpoints and --topic are required")
	}
	if a.command != "produce" && (!a.hasGroup || !a.hasExpect || !a.hasTmo) {
		die("--group, --expect and --timeout are required")
	}
	if hasTag && a.hasSQL {
		die("--tag-expression and --sql exclude each other")
	}
	if a.failFirst && a.failAlways {
		die("--fail-first and --fail-always exclude each other")
	}
	return a
}

type spec struct {
	BodyB64             string            `json:"body_b64"`
	Tag                 *string           `json:"tag"`
	Keys                []string          `json:"keys"`
	Properties          map[string]string `json:"properties"`
	MessageGroup        *string           `json:"message_group"`
	DeliveryTimestampMs *int64            `json:"delivery_timestamp_ms"`
	DeliveryDelayMs     *int64            `json:"delivery_delay_ms"`
	End                 *string           `json:"end"`
	Recall              bool              `json:"recall"`
}

func readSpecs() ([]spec, error) {
	var specs []spec
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var s spec
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	return specs, sc.Err()
}

func kindMismatch(kind string, s spec) error {
	group := s.MessageGroup != nil
	delay := s.DeliveryTimestampMs != nil || s.DeliveryDelayMs != nil
	wantGroup, wantDelay := kind == "fifo", kind == "delay"
	if group != wantGroup || delay != wantDelay {
		return fmt.Errorf("a %s message needs message_group=%v, delivery time=%v", kind, wantGroup, wantDelay)
	}
	return nil
}

// message builds the client message of one input line; due is the delivery instant (ms) requested, or 0.
func message(topic string, s spec) (*rmq.Message, int64, error) {
	body, err := base64.StdEncoding.DecodeString(s.BodyB64)
	if err != nil {
		return nil, 0, err
	}
	m := &rmq.Message{Topic: topic, Body: body}
	if s.Tag != nil {
		m.SetTag(*s.Tag)
	}
	if len(s.Keys) > 0 {
		m.SetKeys(s.Keys...)
	}
	for k, v := range s.Properties {
		m.AddProperty(k, v)
	}
	if s.MessageGroup != nil {
		m.SetMessageGroup(*s.MessageGroup)
	}
	var due int64
	if s.DeliveryTimestampMs != nil {
		due = *s.DeliveryTimestampMs
	} else if s.DeliveryDelayMs != nil {
		due = nowMs() + *s.DeliveryDelayMs
	}
	if due != 0 {
		m.SetDelayTimestamp(time.UnixMilli(due))
	}
	return m, due, nil
}

func receipt(index int, receipts []*rmq.SendReceipt, sentAt, due int64) (map[string]any, error) {
	if len(receipts) != 1 {
		return nil, fmt.Errorf("%d send receipts for one message", len(receipts))
	}
	r := receipts[0]
	m := map[string]any{"ok": true, "index": index, "message_id": r.MessageID, "sent_at_ms": sentAt, "offset": r.Offset}
	if r.TransactionId != "" {
		m["transaction_id"] = r.TransactionId
	}
	m["recall_handle"] = nil
	if r.RecallHandle != "" {
		m["recall_handle"] = r.RecallHandle
	}
	if due != 0 {
		m["delivery_timestamp_ms"] = due
	}
	return m, nil
}

func main() {
	a := parse(os.Args[1:])
	if a.logDir != "" {
		os.Setenv(rmq.CLIENT_LOG_ROOT, a.logDir)
	}
	if a.consoleLog {
		os.Setenv(rmq.ENABLE_CONSOLE_APPENDER, "true") // the client then logs to stdout: keep it off stdout
	}
	rmq.ResetLogger()
	if a.plaintext {
		rmq.EnableSsl = false
	}
	switch a.command {
	case "simple-consume":
		os.Exit(simpleConsume(a))
	case "push-consume":
		os.Exit(pushConsume(a))
	default:
		os.Exit(produce(a))
	}
}

func produce(a args) int {
	specs, err := readSpecs()
	if err != nil {
		die("bad input: " + err.Error())
	}
	answered := map[string]bool{}
	var answeredMu sync.Mutex
	opts := []rmq.ProducerOption{rmq.WithTopics(a.topic)}
	if a.kind == "transaction" {
		opts = append(opts, rmq.WithTransactionChecker(&rmq.TransactionChecker{
			Check: func(view *rmq.MessageView) rmq.TransactionResolution {
				answer := strings.ToUpper(view.GetProperties()[checkProperty])
				resolution, name := rmq.UNKNOWN, "UNKNOWN"
				switch answer {
				case "COMMIT":
					resolution, name = rmq.COMMIT, "COMMIT"
				case "ROLLBACK":
					resolution, name = rmq.ROLLBACK, "ROLLBACK"
				}
				id := view.GetMessageId()
				emit(map[string]any{"check": true, "message_id": id, "at_ms": nowMs(), "resolution": name})
				if resolution != rmq.UNKNOWN {
					answeredMu.Lock()
					answered[id] = true
					answeredMu.Unlock()
				}
				return resolution
			},
		}))
	}
	config := &rmq.Config{Endpoint: a.endpoints, Credentials: &credentials.SessionCredentials{}}
	producer, err := rmq.NewProducer(config, opts...)
	if err == nil {
		err = producer.Start()
	}
	if err != nil {
		for i := range specs {
			emit(map[string]any{"ok": false, "index": i, "stage": "startup", "error": err.Error()})
		}
		emit(map[string]any{"done": true, "sent": 0, "failed": len(specs)})
		return 0
	}
	timeout := time.Duration(a.requestTimeoutMs) * time.Millisecond
	sent, failed := 0, 0
	leftOpen := map[string]bool{}
	for index, s := range specs {
		result, err := sendOne(producer, a, s, index, timeout, leftOpen)
		if err != nil {
			emit(map[string]any{"ok": false, "index": index, "error": err.Error()})
			failed++
			continue
		}
		if s.Recall {
			recall(producer, a.topic, result, timeout)
		}
		emit(result)
		sent++
	}
	linger(a.linger, leftOpen, answered, &answeredMu)
	gracefulStop(producer.GracefulStop)
	emit(map[string]any{"done": true, "sent": sent, "failed": failed})
	return 0
}

// recall calls Producer.Recall with the topic and the receipt's recall handle; its outcome goes into the send line.
func recall(p rmq.Producer, topic string, result map[string]any, timeout time.Duration) {
	handle, _ := result["recall_handle"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	id, err := p.Recall(ctx, topic, handle)
	if err != nil {
		result["recalled"], result["recall_error"] = false, err.Error()
		return
	}
	result["recalled"], result["recalled_message_id"] = true, id
}

func sendOne(p rmq.Producer, a args, s spec, index int, timeout time.Duration, leftOpen map[string]bool) (map[string]any, error) {
	kind := a.kind
	if kind == "transaction" {
		kind = "normal"
	}
	if err := kindMismatch(kind, s); err != nil {
		return nil, err
	}
	msg, due, err := message(a.topic, s)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sentAt := nowMs()
	if a.kind != "transaction" {
		receipts, err := p.Send(ctx, msg)
		if err != nil {
			return nil, err
		}
		return receipt(index, receipts, sentAt, due)
	}
	tx := p.BeginTransaction()
	receipts, err := p.SendWithTransaction(ctx, msg, tx)
	if err != nil {
		return nil, err
	}
	result, err := receipt(index, receipts, sentAt, due)
	if err != nil {
		return nil, err
	}
	end := a.end
	if s.End != nil {
		end = *s.End
	}
	switch end {
	case "commit":
		err = tx.Commit()
	case "rollback":
		err = tx.RollBack()
	default:
		leftOpen[result["message_id"].(string)] = true
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", end, err)
	}
	result["end"] = end
	return result, nil
}

// linger stays up `seconds` at most; with open transactions only until the checker answered each of them.
func linger(seconds float64, leftOpen, answered map[string]bool, mu *sync.Mutex) {
	deadline := time.Now().Add(time.Duration(seconds * float64(time.Second)))
	for time.Now().Before(deadline) {
		mu.Lock()
		done := len(leftOpen) > 0
		for id := range leftOpen {
			done = done && answered[id]
		}
		mu.Unlock()
		if done {
			left := time.Until(deadline)
			time.Sleep(min(time.Second, max(0, left))) // time for the client's EndTransaction
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gracefulStop runs the client's GracefulStop, giving up after 15 s: a stuck stop must not keep the driver from
// printing its done line.
func gracefulStop(stop func() error) {
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			fmt.Fprintln(os.Stderr, "driver: GracefulStop failed:", err)
		}
	case <-time.After(15 * time.Second):
		fmt.Fprintln(os.Stderr, "driver: GracefulStop did not finish within 15 s")
	}
}

// ------------------------------------------------------------------------------------------------ consumers

// stopOnSigterm: the returned channel closes on SIGTERM.
func stopOnSigterm() <-chan struct{} {
	stop := make(chan struct{})
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM)
	go func() {
		<-signals
		close(stop)
	}()
	return stop
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func filter(a args) *rmq.FilterExpression {
	if a.hasSQL {
		return rmq.NewFilterExpressionWithType(a.sql, rmq.SQL92)
	}
	return rmq.NewFilterExpressionWithType(a.tagExpression, rmq.TAG)
}

func consumerConfig(a args) *rmq.Config {
	return &rmq.Config{Endpoint: a.endpoints, ConsumerGroup: a.group, Credentials: &credentials.SessionCredentials{}}
}

func millis(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

// delivery is one delivery line; the client's MessageView has no message type, so it is derived from its fields.
func delivery(mv *rmq.MessageView) map[string]any {
	keys := append([]string{}, mv.GetKeys()...)
	sort.Strings(keys)
	properties := mv.GetProperties()
	if properties == nil {
		properties = map[string]string{}
	}
	messageType := "NORMAL"
	if mv.GetMessageGroup() != nil {
		messageType = "FIFO"
	} else if mv.GetDeliveryTimestamp() != nil {
		messageType = "DELAY"
	}
	return map[string]any{
		"message_id": mv.GetMessageId(), "topic": mv.GetTopic(),
		"body_b64": base64.StdEncoding.EncodeToString(mv.GetBody()), "tag": mv.GetTag(), "keys": keys,
		"properties": properties, "message_group": mv.GetMessageGroup(), "delivery_attempt": mv.GetDeliveryAttempt(),
		"delivery_timestamp_ms": millis(mv.GetDeliveryTimestamp()), "born_host": mv.GetBornHost(),
		"born_timestamp_ms": millis(mv.GetBornTimestamp()), "store_timestamp_ms": nil, "message_type": messageType,
		"received_at_ms": nowMs(),
	}
}

// noMessage: the client hands the server's MESSAGE_NOT_FOUND (an empty long poll) back as an error.
func noMessage(err error) bool {
	var status *rmq.ErrRpcStatus
	return errors.As(err, &status) && status.Code == int32(v2.Code_MESSAGE_NOT_FOUND)
}

func simpleConsume(a args) int {
	stop := stopOnSigterm()
	consumer, err := rmq.NewSimpleConsumer(consumerConfig(a),
		rmq.WithSimpleAwaitDuration(time.Duration(a.awaitS)*time.Second),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{a.topic: filter(a)}))
	if err == nil {
		err = consumer.Start()
	}
	if err != nil {
		emit(map[string]any{"ok": false, "stage": "startup", "error": err.Error()})
		emit(map[string]any{"done": true, "received": 0, "errors": 1})
		return 0
	}
	emit(map[string]any{"ready": true, "at_ms": nowMs()})
	requestTimeout := time.Duration(a.requestTimeoutMs) * time.Millisecond
	deadline := time.Now().Add(time.Duration(a.timeout * float64(time.Second)))
	var lingerUntil *time.Time
	received, errs := 0, 0
	for !stopped(stop) {
		now := time.Now()
		if !now.Before(deadline) || (lingerUntil != nil && !now.Before(*lingerUntil)) {
			break
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(a.awaitS)*time.Second+2*requestTimeout)
		messages, err := consumer.Receive(ctx, int32(a.batch), time.Duration(a.invisibleS)*time.Second)
		cancel()
		if err != nil && !noMessage(err) {
			if stopped(stop) {
				break
			}
			errs++
			emit(map[string]any{"ok": false, "stage": "receive", "error": err.Error(), "at_ms": nowMs()})
			time.Sleep(time.Second)
			continue
		}
		for _, mv := range messages {
			line := delivery(mv)
			line["acked"] = false
			if !a.noAck {
				ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
				if err := consumer.Ack(ctx, mv); err != nil {
					line["ack_error"] = err.Error()
				} else {
					line["acked"] = true
				}
				cancel()
			}
			emit(line)
			received++
		}
		if received >= a.expect && lingerUntil == nil {
			until := time.Now().Add(time.Duration(a.linger * float64(time.Second)))
			lingerUntil = &until
		}
	}
	gracefulStop(consumer.GracefulStop)
	emit(map[string]any{"done": true, "received": received, "errors": errs})
	return 0
}

func pushConsume(a args) int {
	stop := stopOnSigterm()
	var mu sync.Mutex
	ok, deliveries := 0, 0
	failedOnce := map[string]bool{}
	enough := make(chan struct{})
	listener := &rmq.FuncMessageListener{Consume: func(mv *rmq.MessageView) rmq.ConsumerResult {
		line := delivery(mv)
		mu.Lock()
		fail := a.failAlways || a.failFirst && !failedOnce[mv.GetMessageId()]
		if fail {
			failedOnce[mv.GetMessageId()] = true
		} else {
			ok++
		}
		deliveries++
		counted := ok
		if a.failAlways {
			counted = deliveries
		}
		if counted >= a.expect && !stopped(enough) {
			close(enough)
		}
		mu.Unlock()
		if fail {
			line["result"] = "FAILURE"
			emit(line)
			return rmq.FAILURE
		}
		line["result"] = "SUCCESS"
		emit(line)
		return rmq.SUCCESS
	}}
	consumer, err := rmq.NewPushConsumer(consumerConfig(a),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{a.topic: filter(a)}),
		rmq.WithPushConsumptionThreadCount(int32(a.threads)),
		rmq.WithPushMessageListener(listener))
	if err == nil {
		err = consumer.Start()
	}
	if err != nil {
		emit(map[string]any{"ok": false, "stage": "startup", "error": err.Error()})
		emit(map[string]any{"done": true, "received": 0, "deliveries": 0})
		return 0
	}
	emit(map[string]any{"ready": true, "at_ms": nowMs()})
	select {
	case <-stop:
	case <-enough:
		select {
		case <-stop:
		case <-time.After(time.Duration(a.linger * float64(time.Second))):
		}
	case <-time.After(time.Duration(a.timeout * float64(time.Second))):
	}
	gracefulStop(consumer.GracefulStop)
	mu.Lock()
	emit(map[string]any{"done": true, "received": ok, "deliveries": deliveries})
	mu.Unlock()
	return 0
}
