package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"sync"
	"time"

	"github.com/apache/rocketmq-client-go/v2"
	"github.com/apache/rocketmq-client-go/v2/consumer"
	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
)

// request sends each spec message with Producer.Request (or RequestAsync) and reports the reply.
func request(args []string) {
	fs := flag.NewFlagSet("request", flag.ExitOnError)
	namesrv := fs.String("namesrv", "", "name server address")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "producer group")
	specFile := fs.String("spec", "", "JSON file: a list of messages")
	ttlMs := fs.Int("ttl-ms", 10000, "request timeout")
	async := fs.Bool("async", false, "RequestAsync instead of Request")
	warmup := fs.Bool("warmup", false, "first one throwaway Request (1.5 s TTL), reported as a warmup event")
	_ = fs.Parse(args)

	data, err := os.ReadFile(*specFile)
	if err != nil {
		fail("read spec: %v", err)
	}
	var spec []SpecMessage
	if err := json.Unmarshal(data, &spec); err != nil {
		fail("parse spec: %v", err)
	}
	p, err := rocketmq.NewProducer(producer.WithNameServer([]string{*namesrv}), producer.WithGroupName(*group))
	if err != nil {
		fail("new producer: %v", err)
	}
	if err := p.Start(); err != nil {
		fail("start producer: %v", err)
	}
	// The broker pushes a reply to the requester's client id, which it knows from the client's heartbeats. v2.1.2
	// heartbeats 1 s after Start and every 30 s, each time only to brokers it has a route to, and Request adds one
	// only for a topic the name server does not know (Java checks its local route table): a fresh requester's first
	// requests to an existing topic time out. A throwaway first request learns the route before the 1 s heartbeat.
	if *warmup {
		started := nowMs()
		w := primitive.NewMessage(*topic, []byte("warmup"))
		_, err := p.Request(context.Background(), 1500*time.Millisecond, w)
		outcome := "reply"
		if err != nil {
			outcome = err.Error()
		}
		emit("warmup", map[string]interface{}{"outcome": outcome, "elapsedMs": nowMs() - started})
	}
	emit("ready", map[string]interface{}{"pid": os.Getpid()})
	ttl := time.Duration(*ttlMs) * time.Millisecond
	for i, s := range spec {
		msg := buildMessage(*topic, s)
		started := nowMs()
		var reply *primitive.Message
		if *async {
			done := make(chan struct{})
			var cbReply *primitive.Message
			var cbErr error
			var once sync.Once
			err = p.RequestAsync(context.Background(), ttl, func(_ context.Context, m *primitive.Message, e error) {
				// v2.1.2 runs the callback twice for a reply: when it arrives, and again when its future is removed
				// from the cache (the cache's OnEvicted hook).
				once.Do(func() {
					cbReply, cbErr = m, e
					close(done)
				})
			}, msg)
			if err == nil {
				select {
				case <-done:
					reply, err = cbReply, cbErr
				case <-time.After(ttl + 5*time.Second):
					err = errTimeout
				}
			}
		} else {
			reply, err = p.Request(context.Background(), ttl, msg)
		}
		if err != nil || reply == nil {
			e := "no reply"
			if err != nil {
				e = err.Error()
			}
			emit("request-error", map[string]interface{}{"index": i, "error": e, "elapsedMs": nowMs() - started})
			continue
		}
		emit("reply", map[string]interface{}{
			"index": i, "body": base64.StdEncoding.EncodeToString(reply.Body), "topic": reply.Topic,
			"props": reply.GetProperties(), "correlationId": msg.GetProperty(primitive.PropertyCorrelationID),
			"elapsedMs": nowMs() - started,
		})
	}
	emit("done", map[string]interface{}{})
	_ = p.Shutdown()
}

type timeoutError struct{}

func (timeoutError) Error() string { return "the RequestAsync callback never came" }

var errTimeout error = timeoutError{}

// pull reads a topic with the PullConsumer: Poll + ACK (the client's own queue allocation and offsets).
func pull(args []string) {
	fs := flag.NewFlagSet("pull", flag.ExitOnError)
	namesrv := fs.String("namesrv", "", "name server address")
	topic := fs.String("topic", "", "topic")
	group := fs.String("group", "", "consumer group")
	expr := fs.String("expr", "*", "tag subscription expression")
	expect := fs.Int("expect", 0, "stop once this many messages arrived (and --linger passed)")
	timeout := fs.Float64("timeout", 30, "give up after this many seconds")
	linger := fs.Float64("linger", 1, "after the expected count, keep polling this many seconds (duplicates)")
	_ = fs.Parse(args)

	c, err := rocketmq.NewPullConsumer(
		consumer.WithNameServer([]string{*namesrv}),
		consumer.WithGroupName(*group),
		consumer.WithConsumeFromWhere(consumer.ConsumeFromFirstOffset),
		consumer.WithStrategy(allocationReporter()),
	)
	if err != nil {
		fail("new pull consumer: %v", err)
	}
	if err := c.Subscribe(*topic, consumer.MessageSelector{Type: consumer.TAG, Expression: *expr}); err != nil {
		fail("subscribe: %v", err)
	}
	if err := c.Start(); err != nil {
		fail("start pull consumer: %v", err)
	}
	emit("ready", map[string]interface{}{"pid": os.Getpid()})
	deadline := time.Now().Add(time.Duration(*timeout * float64(time.Second)))
	var stopAt time.Time
	count := 0
	for time.Now().Before(deadline) && (stopAt.IsZero() || time.Now().Before(stopAt)) {
		cr, err := c.Poll(context.Background(), 500*time.Millisecond)
		if consumer.IsNoNewMsgError(err) {
			continue
		}
		if err != nil {
			emit("poll-error", map[string]interface{}{"error": err.Error()})
			continue
		}
		for _, m := range cr.GetMsgList() {
			emit("message", messageFields(m))
			count++
		}
		c.ACK(context.Background(), cr, consumer.ConsumeSuccess)
		if *expect > 0 && count >= *expect && stopAt.IsZero() {
			stopAt = time.Now().Add(time.Duration(*linger * float64(time.Second)))
		}
	}
	emit("done", map[string]interface{}{"count": count, "timedOut": *expect > 0 && count < *expect})
	_ = c.Shutdown()
}
