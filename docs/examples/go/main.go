// A pocketmq for a Go test: start `pocketmq up --ready-file`, wait for the file, read the addresses from it.
// No log scraping, no fixed ports (port 0: the kernel picks free ones), a fresh store per run.
//
// In a test, call startPocketMQ(t.TempDir()) from TestMain or the test, and defer mq.Stop().
// Run as it is: `go run .` (the command that starts pocketmq is `pocketmq`, or what POCKETMQ_COMMAND says, e.g.
// `python -m pocketmq`). compat_tests/test_ready_file_examples.py runs it.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/apache/rocketmq-client-go/v2/primitive"
	"github.com/apache/rocketmq-client-go/v2/producer"
	"github.com/apache/rocketmq-client-go/v2/rlog"
)

// Ready is what pocketmq writes to its ready file once every port accepts connections.
type Ready struct {
	NamesrvAddr  string `json:"namesrvAddr"`
	BrokerAddr   string `json:"brokerAddr"`
	GrpcEndpoint string `json:"grpcEndpoint"`
	HTTPEndpoint string `json:"httpEndpoint"`
	Pid          int    `json:"pid"`
}

type PocketMQ struct {
	Ready
	cmd    *exec.Cmd
	exited chan error // cmd.Wait's result, once the process ends
}

func startPocketMQ(dir string) (*PocketMQ, error) {
	command := os.Getenv("POCKETMQ_COMMAND")
	if command == "" {
		command = "pocketmq"
	}
	words := strings.Fields(command)
	readyFile := filepath.Join(dir, "ready.json")
	args := append(words[1:], "up", "--data-dir", filepath.Join(dir, "data"), "--host", "127.0.0.1",
		"--namesrv-port", "0", "--broker-port", "0", "--grpc-port", "0", "--http-port", "0", "--ready-file", readyFile)
	cmd := exec.Command(words[0], args...)
	logFile, err := os.Create(filepath.Join(dir, "pocketmq.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, err := os.ReadFile(readyFile) // written atomically: whole or absent
		if err == nil {
			mq := &PocketMQ{cmd: cmd, exited: exited}
			if err := json.Unmarshal(data, &mq.Ready); err != nil {
				return nil, err
			}
			return mq, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("pocketmq exited (%v); see %s", err, logFile.Name())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("pocketmq did not start within 60 s; see %s", logFile.Name())
		}
	}
}

// Stop sends SIGTERM (pocketmq flushes and exits 0) and waits for the process to end; an error unless it exited 0.
func (mq *PocketMQ) Stop() error {
	if err := mq.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case err := <-mq.exited:
		return err
	case <-time.After(15 * time.Second):
		_ = mq.cmd.Process.Kill()
		return fmt.Errorf("pocketmq did not stop within 15 s")
	}
}

func main() {
	rlog.SetLogLevel("error")
	dir, err := os.MkdirTemp("", "pocketmq-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	mq, err := startPocketMQ(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("namesrvAddr=%s\n", mq.NamesrvAddr)
	p, err := producer.NewDefaultProducer(
		producer.WithNameServer([]string{mq.NamesrvAddr}), producer.WithGroupName("ready-file-example"))
	if err == nil {
		err = p.Start()
	}
	if err == nil {
		var result *primitive.SendResult
		msg := primitive.NewMessage("ReadyFileT", []byte("hello"))
		result, err = p.SendSync(context.Background(), msg)
		if err == nil {
			fmt.Printf("sent %s queueOffset=%d\n", sendStatus(result.Status), result.QueueOffset)
		}
		_ = p.Shutdown()
	}
	if stopErr := mq.Stop(); stopErr != nil && err == nil {
		err = stopErr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("stopped")
}

func sendStatus(status primitive.SendStatus) string {
	if status == primitive.SendOK {
		return "SEND_OK"
	}
	return fmt.Sprintf("status %d", status)
}
