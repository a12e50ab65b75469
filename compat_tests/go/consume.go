package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// splitKeys turns the space-joined KEYS property back into a list.
func splitKeys(keys string) []string {
	out := []string{}
	for _, k := range strings.Split(keys, primitive.PropertyKeySeparator) {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

// messageFields describes a received message; the body is base64 (bodies may be binary).
func messageFields(m *primitive.MessageExt) map[string]interface{} {
	return map[string]interface{}{
		"name":            m.GetProperty(NameProperty),
		"body":            base64.StdEncoding.EncodeToString(m.Body),
		"topic":           m.Topic,
		"keys":            splitKeys(m.GetKeys()),
		"tags":            m.GetTags(),
		"props":           m.GetProperties(),
		"msgId":           m.MsgId,
		"offsetMsgId":     m.OffsetMsgId,
		"queueId":         queueID(m.Queue),
		"queueOffset":     m.QueueOffset,
		"commitLogOffset": m.CommitLogOffset,
		"sysFlag":         m.SysFlag,
		"preparedOffset":  m.PreparedTransactionOffset,
		"reconsumeTimes":  m.ReconsumeTimes,
		"bornTimestamp":   m.BornTimestamp,
		"storeTimestamp":  m.StoreTimestamp,
		"queueTopic":      queueTopic(m.Queue), // the topic pulled: %RETRY%<group> for a retry, where Topic is restored
	}
}

func queueTopic(q *primitive.MessageQueue) string {
	if q == nil {
		return ""
	}
	return q.Topic
}

// allocationReporter wraps the default strategy (AllocateByAveragely) to report each new assignment: a readiness
// signal for tests, since the push consumer does not expose its queues.
func allocationReporter() consumer.AllocateStrategy {
	var mu sync.Mutex
	last := map[string]string{}
	return func(group, cid string, all []*primitive.MessageQueue, cids []string) []*primitive.MessageQueue {
		mine := consumer.AllocateByAveragely(group, cid, all, cids)
		ids := make([]int, 0, len(mine))
		for _, q := range mine {
			ids = append(ids, q.QueueId)
		}
		sort.Ints(ids)
		topic := ""
		if len(all) > 0 {
			topic = all[0].Topic
		}
		key := fmt.Sprintf("%v|%d|%d", ids, len(cids), len(all))
		mu.Lock()
		changed := last[topic] != key
		last[topic] = key
		mu.Unlock()
		if changed {
			emit("allocated", map[string]interface{}{
				"topic": topic, "clientId": cid, "queues": ids, "consumers": len(cids), "allQueues": len(all),
			})
		}
		return mine
	}
}

func consume(args []string) {
	fs := flag.NewFlagSet("consume", flag.ExitOnError)
	namesrv := fs.String("namesrv", "", "name server address")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "consumer group")
	expect := fs.Int("expect", 0, "stop once this many messages arrived (and --linger passed)")
	timeout := fs.Float64("timeout", 30, "give up after this many seconds")
	linger := fs.Float64("linger", 2, "after the expected count, keep consuming this many seconds (duplicates)")
	expr := fs.String("expr", "*", "tag subscription expression")
	sql := fs.String("sql", "", "SQL92 subscription expression (instead of --expr)")
	broadcast := fs.Bool("broadcast", false, "consumer.BroadCasting instead of Clustering")
	orderly := fs.Bool("orderly", false, "consumer.WithConsumerOrder(true)")
	from := fs.String("from", "first", "first | last: consumer.WithConsumeFromWhere for a group without offsets")
	failUntil := fs.Int("fail-until", 0, "answer ConsumeRetryLater while reconsumeTimes < N (-1: always)")
	maxReconsume := fs.Int("max-reconsume", -1, "consumer.WithMaxReconsumeTimes (-1: the client's default)")
	retryLevel := fs.Int("retry-delay-level", 0, "ConsumeConcurrentlyContext.DelayLevelWhenNextConsume on retry (0: the broker's 3 + reconsumeTimes)")
	stopFile := fs.String("stop-file", "", "also stop (after --linger) once this file exists")
	reply := fs.Bool("reply", false, "answer each request message (consumer.CreateReplyMessage) with 'reply:'+body")
	accessKey := fs.String("access-key", "", "ACL 1.0 credentials: consumer.WithCredentials (with --secret-key)")
	secretKey := fs.String("secret-key", "", "ACL 1.0 secret key")
	_ = fs.Parse(args)

	where := consumer.ConsumeFromFirstOffset
	if *from == "last" {
		where = consumer.ConsumeFromLastOffset
	}
	model := consumer.Clustering
	if *broadcast {
		model = consumer.BroadCasting
	}
	instance := "DEFAULT" // clustering consumers replace it with the pid themselves
	if *broadcast {
		// Broadcasting keeps "DEFAULT": processes on one host would share a client id and local offset file.
		instance = fmt.Sprintf("broadcast-%d", os.Getpid())
	}
	opts := []consumer.Option{
		consumer.WithNameServer([]string{*namesrv}),
		consumer.WithGroupName(*group),
		consumer.WithConsumerModel(model),
		consumer.WithConsumeFromWhere(where),
		consumer.WithStrategy(allocationReporter()),
		consumer.WithInstance(instance),
	}
	if *orderly {
		opts = append(opts, consumer.WithConsumerOrder(true))
	}
	if *accessKey != "" {
		opts = append(opts, consumer.WithCredentials(primitive.Credentials{AccessKey: *accessKey, SecretKey: *secretKey}))
	}
	if *maxReconsume >= 0 {
		opts = append(opts, consumer.WithMaxReconsumeTimes(int32(*maxReconsume)))
	}
	if *failUntil != 0 && *orderly {
		// An orderly consumer retries locally after this pause rather than sending back.
		opts = append(opts, consumer.WithSuspendCurrentQueueTimeMillis(200*time.Millisecond))
	}
	c, err := rocketmq.NewPushConsumer(opts...)
	if err != nil {
		fail("new push consumer: %v", err)
	}

	var replier rocketmq.Producer
	if *reply {
		replier, err = rocketmq.NewProducer(producer.WithNameServer([]string{*namesrv}),
			producer.WithGroupName(*group+"-reply"))
		if err != nil {
			fail("new reply producer: %v", err)
		}
		if err := replier.Start(); err != nil {
			fail("start reply producer: %v", err)
		}
	}

	selector := consumer.MessageSelector{Type: consumer.TAG, Expression: *expr}
	if *sql != "" {
		selector = consumer.MessageSelector{Type: consumer.SQL92, Expression: *sql}
	}
	var mu sync.Mutex
	count := 0
	reached := make(chan struct{})
	err = c.Subscribe(*topic, selector, func(ctx context.Context,
		msgs ...*primitive.MessageExt) (consumer.ConsumeResult, error) {
		result := consumer.ConsumeSuccess
		for _, m := range msgs {
			fields := messageFields(m)
			retry := *failUntil < 0 || m.ReconsumeTimes < int32(*failUntil)
			fields["retryLater"] = retry
			emit("message", fields)
			if retry {
				result = consumer.ConsumeRetryLater
				if cc, ok := primitive.GetConcurrentlyCtx(ctx); ok && *retryLevel > 0 {
					cc.DelayLevelWhenNextConsume = *retryLevel
				}
			}
			if replier != nil {
				sendReply(replier, m)
			}
			mu.Lock()
			count++
			if count == *expect {
				close(reached)
			}
			mu.Unlock()
		}
		return result, nil
	})
	if err != nil {
		fail("subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		fail("start consumer: %v", err)
	}
	emit("started", map[string]interface{}{"pid": os.Getpid()})
	emit("ready", map[string]interface{}{"pid": os.Getpid()})
	wait := reached
	if *expect <= 0 {
		wait = nil // nothing expected: consume for the whole timeout (or until the stop file)
	}
	stopped := make(chan struct{})
	if *stopFile != "" {
		go func() {
			for {
				if _, err := os.Stat(*stopFile); err == nil {
					close(stopped)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	timedOut := false
	select {
	case <-wait:
		time.Sleep(time.Duration(*linger * float64(time.Second)))
	case <-stopped:
		time.Sleep(time.Duration(*linger * float64(time.Second)))
	case <-time.After(time.Duration(*timeout * float64(time.Second))):
		timedOut = true
	}
	mu.Lock()
	n := count
	mu.Unlock()
	emit("done", map[string]interface{}{"count": n, "timedOut": timedOut && *expect > 0})
	_ = c.Shutdown()
	if replier != nil {
		_ = replier.Shutdown()
	}
}

func sendReply(p rocketmq.Producer, m *primitive.MessageExt) {
	body := append([]byte("reply:"), m.Body...)
	r, err := consumer.CreateReplyMessage(m, body)
	if err != nil {
		emit("reply-error", map[string]interface{}{"msgId": m.MsgId, "error": err.Error()})
		return
	}
	// v2.1.2's CreateReplyMessage parses the body as properties and never sets it: set it here.
	r.Body = body
	res, err := p.SendSync(context.Background(), r)
	if err != nil {
		emit("reply-error", map[string]interface{}{"msgId": m.MsgId, "error": err.Error()})
		return
	}
	emit("replied", map[string]interface{}{"msgId": m.MsgId, "status": statusName(res.Status), "topic": r.Topic})
}
