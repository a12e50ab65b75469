package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// SpecMessage is one entry of a --spec file.
type SpecMessage struct {
	Body        string            `json:"body"` // base64
	Tags        *string           `json:"tags"`
	Keys        []string          `json:"keys"`
	Props       map[string]string `json:"props"`
	DelayLevel  int               `json:"delayLevel"`
	ShardingKey string            `json:"shardingKey"`
}

func buildMessage(topic string, s SpecMessage) *primitive.Message {
	body, err := base64.StdEncoding.DecodeString(s.Body)
	if err != nil {
		fail("spec body is not base64: %v", err)
	}
	msg := primitive.NewMessage(topic, body)
	if s.Tags != nil {
		msg.WithTag(*s.Tags)
	}
	if len(s.Keys) > 0 {
		msg.WithKeys(s.Keys)
	}
	for k, v := range s.Props {
		msg.WithProperty(k, v)
	}
	if s.DelayLevel > 0 {
		msg.WithDelayTimeLevel(s.DelayLevel)
	}
	if s.ShardingKey != "" {
		msg.WithShardingKey(s.ShardingKey)
	}
	return msg
}

func statusName(s primitive.SendStatus) string {
	switch s {
	case primitive.SendOK:
		return "SEND_OK"
	case primitive.SendFlushDiskTimeout:
		return "FLUSH_DISK_TIMEOUT"
	case primitive.SendFlushSlaveTimeout:
		return "FLUSH_SLAVE_TIMEOUT"
	case primitive.SendSlaveNotAvailable:
		return "SLAVE_NOT_AVAILABLE"
	default:
		return "UNKNOWN_ERROR"
	}
}

func sentFields(index int, res *primitive.SendResult) map[string]interface{} {
	out := map[string]interface{}{
		"index": index, "msgId": res.MsgID, "offsetMsgId": res.OffsetMsgID, "queueOffset": res.QueueOffset,
		"status": statusName(res.Status), "queueId": -1,
	}
	if q := res.MessageQueue; q != nil {
		out["queueId"] = q.QueueId
		out["brokerName"] = q.BrokerName
	}
	return out
}

func produce(args []string) {
	fs := flag.NewFlagSet("produce", flag.ExitOnError)
	namesrv := fs.String("namesrv", "", "name server address")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "producer group")
	specFile := fs.String("spec", "", "JSON file: a list of messages")
	mode := fs.String("mode", "sync", "sync | async | oneway | batch")
	retries := fs.Int("retry", 2, "producer.WithRetry")
	timeoutMs := fs.Int("send-timeout-ms", 10000, "producer.WithSendMsgTimeout")
	accessKey := fs.String("access-key", "", "ACL 1.0 credentials: producer.WithCredentials (with --secret-key)")
	secretKey := fs.String("secret-key", "", "ACL 1.0 secret key")
	_ = fs.Parse(args)

	data, err := os.ReadFile(*specFile)
	if err != nil {
		fail("read spec: %v", err)
	}
	var spec []SpecMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		fail("parse spec: %v", err)
	}
	msgs := make([]*primitive.Message, len(spec))
	sharded := false
	for i, s := range spec {
		msgs[i] = buildMessage(*topic, s)
		sharded = sharded || s.ShardingKey != ""
	}

	opts := []producer.Option{
		producer.WithNameServer([]string{*namesrv}),
		producer.WithGroupName(*group),
		producer.WithRetry(*retries),
		producer.WithSendMsgTimeout(time.Duration(*timeoutMs) * time.Millisecond),
	}
	if *accessKey != "" {
		opts = append(opts, producer.WithCredentials(primitive.Credentials{AccessKey: *accessKey, SecretKey: *secretKey}))
	}
	if sharded {
		// Orderly sending: the same sharding key always picks the same queue (FNV-1a hash of the key).
		opts = append(opts, producer.WithQueueSelector(producer.NewHashQueueSelector()))
	}
	p, err := rocketmq.NewProducer(opts...)
	if err != nil {
		fail("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		fail("start producer: %v", err)
	}
	emit("ready", map[string]interface{}{"pid": os.Getpid()})

	ctx := context.Background()
	sendErr := func(i int, err error, started int64) {
		emit("send-error", map[string]interface{}{"index": i, "error": err.Error(), "elapsedMs": nowMs() - started})
	}
	switch *mode {
	case "sync":
		for i, m := range msgs {
			started := nowMs()
			res, err := p.SendSync(ctx, m)
			if err != nil {
				sendErr(i, err, started)
				continue
			}
			emit("sent", sentFields(i, res))
		}
	case "async":
		var wg sync.WaitGroup
		for i, m := range msgs {
			i := i
			started := nowMs()
			wg.Add(1)
			var once sync.Once // v2.1.2's sendAsync does not return after reporting a failed invoke to the callback
			err := p.SendAsync(ctx, func(_ context.Context, res *primitive.SendResult, err error) {
				once.Do(func() {
					defer wg.Done()
					if err != nil {
						sendErr(i, err, started)
						return
					}
					emit("sent", sentFields(i, res))
				})
			}, m)
			if err != nil {
				once.Do(func() { wg.Done(); sendErr(i, err, started) })
			}
		}
		wg.Wait()
	case "oneway":
		for i, m := range msgs {
			started := nowMs()
			if err := p.SendOneWay(ctx, m); err != nil {
				sendErr(i, err, started)
				continue
			}
			// No answer comes back: only the id the client gave the message is known.
			emit("sent", map[string]interface{}{
				"index": i, "msgId": m.GetProperty(primitive.PropertyUniqueClientMessageIdKeyIndex), "offsetMsgId": "",
				"queueId": -1, "queueOffset": -1, "status": "ONEWAY",
			})
		}
	case "batch":
		started := nowMs()
		res, err := p.SendSync(ctx, msgs...)
		if err != nil {
			for i := range msgs {
				sendErr(i, err, started)
			}
			break
		}
		// One answer for the whole batch: consecutive queue offsets, comma-separated ids.
		msgIDs := strings.Split(res.MsgID, ",")
		offsetIDs := strings.Split(res.OffsetMsgID, ",")
		for i := range msgs {
			out := sentFields(i, res)
			out["queueOffset"] = res.QueueOffset + int64(i)
			out["msgId"] = pick(msgIDs, i)
			out["offsetMsgId"] = pick(offsetIDs, i)
			out["batchMsgId"] = res.MsgID
			out["batchOffsetMsgId"] = res.OffsetMsgID
			emit("sent", out)
		}
	default:
		fail("unknown --mode %q", *mode)
	}
	if *mode == "oneway" {
		time.Sleep(300 * time.Millisecond) // oneway requests are written asynchronously: let them reach the wire
	}
	emit("done", map[string]interface{}{})
	_ = p.Shutdown()
}

func pick(xs []string, i int) string {
	if len(xs) == 0 || (len(xs) == 1 && xs[0] == "") {
		return ""
	}
	if i < len(xs) {
		return xs[i]
	}
	return ""
}
