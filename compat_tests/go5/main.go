// Scenario driver for the official RocketMQ 5.x Go client (github.com/apache/rocketmq-clients/golang/v5, gRPC).
// A JSON-lines CLI: stdout carries only JSON lines; the client's log goes to files under --log-dir (its
// rocketmq.client.logRoot); --console-log sends it to stdout instead (the client's only console), for debugging only.
//
//	produce --endpoints HOST:PORT --topic T [--kind normal|fifo|delay|transaction] [--commit|--rollback|--no-end]
//	        [--linger S] [--plaintext|--tls] [--request-timeout-ms MS] [--log-dir DIR] [--console-log]
//
// One JSON message per stdin line: {"body_b64", "tag", "keys": [...], "properties": {...}, "message_group",
// "delivery_timestamp_ms" | "delivery_delay_ms" (relative to the send), "end": "commit"|"rollback"|"none"}. Prints
// per message, in input order, {"ok": true, "index", "message_id", "sent_at_ms", "offset", ["transaction_id"],
// ["recall_handle"], ["delivery_timestamp_ms"], ["end"]} or {"ok": false, "index", ["stage": "startup"], "error"};
// per transaction check {"check": true, "message_id", "resolution", "at_ms"}; then {"done": true, "sent",
// "failed"}. The client's defaults are kept: TLS on, trusting any certificate (its default tls.Config has
// InsecureSkipVerify); --plaintext sets rmq_client.EnableSsl = false. The transaction checker answers from the
// user property pmqCheck (COMMIT, ROLLBACK, else UNKNOWN).
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
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
	endpoints, topic, kind, end, logDir string
	linger                              float64
	plaintext, consoleLog               bool
	requestTimeoutMs                    int64
}

func die(msg string) {
	fmt.Fprintln(os.Stderr, "driver:", msg)
	os.Exit(2)
}

func parse(argv []string) args {
	if len(argv) == 0 || argv[0] != "produce" {
		die("usage: produce --endpoints HOST:PORT --topic T ...")
	}
	a := args{kind: "normal", end: "commit", requestTimeoutMs: 3000}
	next := func(i *int) string {
		*i++
		if *i >= len(argv) {
			die("missing value for " + argv[*i-1])
		}
		return argv[*i]
	}
	for i := 1; i < len(argv); i++ {
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
	os.Exit(produce(a))
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
		emit(result)
		sent++
	}
	linger(a.linger, leftOpen, answered, &answeredMu)
	stopped := make(chan error, 1)
	go func() { stopped <- producer.GracefulStop() }()
	select {
	case err := <-stopped:
		if err != nil {
			fmt.Fprintln(os.Stderr, "driver: GracefulStop failed:", err)
		}
	case <-time.After(15 * time.Second):
		fmt.Fprintln(os.Stderr, "driver: GracefulStop did not finish within 15 s")
	}
	emit(map[string]any{"done": true, "sent": sent, "failed": failed})
	return 0
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
