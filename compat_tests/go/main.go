// Command driver runs scenarios of the stock Go RocketMQ client (github.com/apache/rocketmq-client-go/v2) against a
// broker for pocketmq's compatibility tests (compat_tests/go_driver.py, compat_tests/test_go_transactions.py).
//
// It prints one JSON object per line on stdout; the client's own logging (errors only) goes to stderr.
//
//	driver txproduce --namesrv ADDR --topic T --group G --plan FILE [--block-local-ms N] [--wait-checks-ms N] [--stay-ms N]
//	driver produce   --namesrv ADDR --topic T --group G --spec FILE [--mode sync|async|oneway|batch]
//	driver consume   --namesrv ADDR --topic T --group G --expect N --timeout S [--linger S] [--expr E | --sql E]
//	                 [--broadcast] [--orderly] [--from first|last] [--fail-until N] [--max-reconsume N] [--reply]
//	driver request   --namesrv ADDR --topic T --group G --spec FILE [--ttl-ms N] [--async]
//	driver pull      --namesrv ADDR --topic T --group G --expect N --timeout S [--linger S] [--expr E]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// NameProperty is the user property carrying a planned message's name, so checks and consumers can tell them apart.
const NameProperty = "pmqTx"

var outMu sync.Mutex

func nowMs() int64 { return time.Now().UnixMilli() }

// emit prints one event as a JSON line on stdout.
func emit(event string, fields map[string]interface{}) {
	fields["event"] = event
	if _, ok := fields["time"]; !ok {
		fields["time"] = nowMs()
	}
	line, err := json.Marshal(fields)
	if err != nil {
		line = []byte(fmt.Sprintf(`{"event":"error","error":%q}`, err.Error()))
	}
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

func fail(format string, args ...interface{}) {
	emit("error", map[string]interface{}{"error": fmt.Sprintf(format, args...)})
	os.Exit(2)
}

// PlannedMessage is one entry of a --plan file.
type PlannedMessage struct {
	Name    string            `json:"name"`
	Body    string            `json:"body"`
	Tags    string            `json:"tags"`
	Keys    []string          `json:"keys"`
	Props   map[string]string `json:"props"`
	Local   string            `json:"local"`   // commit | rollback | unknown: ExecuteLocalTransaction's answer
	Checks  []string          `json:"checks"`  // the n-th check (this process) answers Checks[min(n, len-1)]
	Send    *bool             `json:"send"`    // false: only answer checks for it (sent by another process)
	BlockMs int               `json:"blockMs"` // sleep this long in ExecuteLocalTransaction (overrides --block-local-ms)
}

func (m *PlannedMessage) sends() bool { return m.Send == nil || *m.Send }

func parseState(s string) primitive.LocalTransactionState {
	switch strings.ToLower(s) {
	case "commit":
		return primitive.CommitMessageState
	case "rollback":
		return primitive.RollbackMessageState
	default:
		return primitive.UnknowState
	}
}

func stateName(s primitive.LocalTransactionState) string {
	switch s {
	case primitive.CommitMessageState:
		return "commit"
	case primitive.RollbackMessageState:
		return "rollback"
	default:
		return "unknown"
	}
}

// listener answers ExecuteLocalTransaction and CheckLocalTransaction from the plan.
type listener struct {
	mu       sync.Mutex
	plan     map[string]*PlannedMessage
	blockMs  int
	checks   map[string]int  // checks received per message name
	resolved map[string]bool // a check was answered with commit or rollback
	changed  chan struct{}
}

func (l *listener) ExecuteLocalTransaction(msg *primitive.Message) primitive.LocalTransactionState {
	name := msg.GetProperty(NameProperty)
	l.mu.Lock()
	planned := l.plan[name]
	l.mu.Unlock()
	block := l.blockMs
	if planned != nil && planned.BlockMs > 0 {
		block = planned.BlockMs
	}
	emit("local-start", map[string]interface{}{
		"name": name, "transactionId": msg.TransactionId, "props": msg.GetProperties(), "blockMs": block,
	})
	if block > 0 {
		time.Sleep(time.Duration(block) * time.Millisecond)
	}
	state := primitive.UnknowState
	if planned != nil {
		state = parseState(planned.Local)
	}
	emit("local", map[string]interface{}{
		"name": name, "transactionId": msg.TransactionId, "props": msg.GetProperties(), "state": stateName(state),
	})
	return state
}

func (l *listener) CheckLocalTransaction(msg *primitive.MessageExt) primitive.LocalTransactionState {
	received := nowMs()
	name := msg.GetProperty(NameProperty)
	l.mu.Lock()
	n := l.checks[name]
	l.checks[name] = n + 1
	state := primitive.UnknowState
	if planned := l.plan[name]; planned != nil && len(planned.Checks) > 0 {
		i := n
		if i >= len(planned.Checks) {
			i = len(planned.Checks) - 1
		}
		state = parseState(planned.Checks[i])
	}
	if state != primitive.UnknowState {
		l.resolved[name] = true
	}
	l.mu.Unlock()
	emit("check", map[string]interface{}{
		"name":            name,
		"seq":             n + 1,
		"transactionId":   msg.TransactionId,
		"msgId":           msg.MsgId,
		"offsetMsgId":     msg.OffsetMsgId,
		"topic":           msg.Topic,
		"queueId":         queueID(msg.Queue),
		"queueOffset":     msg.QueueOffset,
		"commitLogOffset": msg.CommitLogOffset,
		"bornTimestamp":   msg.BornTimestamp,
		"storeTimestamp":  msg.StoreTimestamp,
		"body":            string(msg.Body),
		"props":           msg.GetProperties(),
		"answer":          stateName(state),
		"time":            received,
	})
	select {
	case l.changed <- struct{}{}:
	default:
	}
	return state
}

// unresolved names planned messages that still wait for a check answering commit or rollback.
func (l *listener) unresolved(localStates map[string]primitive.LocalTransactionState) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for name, planned := range l.plan {
		final := false
		for _, c := range planned.Checks {
			if parseState(c) != primitive.UnknowState {
				final = true
			}
		}
		if !final || l.resolved[name] {
			continue
		}
		if st, sent := localStates[name]; sent && st != primitive.UnknowState {
			continue // resolved by the local transaction itself
		}
		out = append(out, name)
	}
	return out
}

func queueID(q *primitive.MessageQueue) int {
	if q == nil {
		return -1
	}
	return q.QueueId
}

func txproduce(args []string) {
	fs := flag.NewFlagSet("txproduce", flag.ExitOnError)
	namesrv := fs.String("namesrv", "", "name server address")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "producer group")
	planFile := fs.String("plan", "", "JSON file: a list of planned messages")
	blockMs := fs.Int("block-local-ms", 0, "sleep this long in every ExecuteLocalTransaction")
	waitChecksMs := fs.Int("wait-checks-ms", 0, "after sending, wait up to this long for every planned check answer")
	stayMs := fs.Int("stay-ms", 0, "after sending, stay connected at least this long (answering checks)")
	_ = fs.Parse(args)

	data, err := os.ReadFile(*planFile)
	if err != nil {
		fail("read plan: %v", err)
	}
	var plan []*PlannedMessage
	if err := json.Unmarshal(data, &plan); err != nil {
		fail("parse plan: %v", err)
	}
	l := &listener{
		plan: map[string]*PlannedMessage{}, blockMs: *blockMs, checks: map[string]int{}, resolved: map[string]bool{},
		changed: make(chan struct{}, 1),
	}
	for _, m := range plan {
		l.plan[m.Name] = m
	}

	p, err := rocketmq.NewTransactionProducer(
		l,
		producer.WithNameServer([]string{*namesrv}),
		producer.WithGroupName(*group),
		producer.WithRetry(2),
		producer.WithSendMsgTimeout(10*time.Second),
	)
	if err != nil {
		fail("new transaction producer: %v", err)
	}
	if err := p.Start(); err != nil {
		fail("start producer: %v", err)
	}
	emit("started", map[string]interface{}{"pid": os.Getpid()})
	sentAt := nowMs()

	localStates := map[string]primitive.LocalTransactionState{}
	for i, m := range plan {
		if !m.sends() {
			continue
		}
		msg := primitive.NewMessage(*topic, []byte(m.Body))
		if m.Tags != "" {
			msg.WithTag(m.Tags)
		}
		if len(m.Keys) > 0 {
			msg.WithKeys(m.Keys)
		}
		for k, v := range m.Props {
			msg.WithProperty(k, v)
		}
		msg.WithProperty(NameProperty, m.Name)
		start := nowMs()
		res, err := p.SendMessageInTransaction(context.Background(), msg)
		if err != nil {
			emit("send-error", map[string]interface{}{"index": i, "name": m.Name, "error": err.Error()})
			continue
		}
		localStates[m.Name] = res.State
		out := map[string]interface{}{
			"index": i, "name": m.Name, "status": int(res.Status), "ok": res.Status == primitive.SendOK,
			"msgId": res.MsgID, "offsetMsgId": res.OffsetMsgID, "transactionId": res.TransactionID,
			"queueOffset": res.QueueOffset, "state": stateName(res.State), "sendStart": start,
		}
		if q := res.MessageQueue; q != nil {
			out["queue"] = map[string]interface{}{"topic": q.Topic, "brokerName": q.BrokerName, "queueId": q.QueueId}
		}
		emit("sent", out)
		sentAt = nowMs()
	}

	stayUntil := time.UnixMilli(sentAt).Add(time.Duration(*stayMs) * time.Millisecond)
	waitUntil := time.UnixMilli(sentAt).Add(time.Duration(*waitChecksMs) * time.Millisecond)
	for {
		now := time.Now()
		pending := l.unresolved(localStates)
		if now.After(stayUntil) && (len(pending) == 0 || now.After(waitUntil)) {
			if len(pending) > 0 {
				emit("checks-missing", map[string]interface{}{"names": pending})
			}
			break
		}
		select {
		case <-l.changed:
		case <-time.After(100 * time.Millisecond):
		}
	}
	// END_TRANSACTION after a check is oneway: give it a moment on the wire before closing the connection.
	time.Sleep(500 * time.Millisecond)
	l.mu.Lock()
	checks := map[string]int{}
	for k, v := range l.checks {
		checks[k] = v
	}
	l.mu.Unlock()
	emit("done", map[string]interface{}{"checks": checks})
	_ = p.Shutdown()
}

func main() {
	rlog.SetLogLevel("error")
	if len(os.Args) < 2 {
		fail("usage: driver txproduce|produce|consume|request|pull ...")
	}
	// A SIGTERM from the test harness ends the process without the client's slow shutdown.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	go func() {
		<-sig
		emit("terminated", map[string]interface{}{})
		os.Exit(3)
	}()
	switch os.Args[1] {
	case "txproduce":
		txproduce(os.Args[2:])
	case "produce":
		produce(os.Args[2:])
	case "request":
		request(os.Args[2:])
	case "pull":
		pull(os.Args[2:])
	case "consume":
		consume(os.Args[2:])
	default:
		fail("unknown subcommand %q", os.Args[1])
	}
}
