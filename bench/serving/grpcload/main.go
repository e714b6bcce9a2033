// Command grpcload drives one unary gRPC method with a fixed request, as wrk does for HTTP:
// a number of connections, each with one call in flight, for a number of seconds. The request
// is read already serialized (so no generated Go code is needed) and responses are not
// decoded. Prints one JSON object: calls per second, p50/p99 latency, errors.
//
//	grpcload -target 127.0.0.1:8081 -method /inference.GRPCInferenceService/ModelInfer \
//	    -request req.bin -c 8 -d 5s
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// passthrough sends and receives message bytes as they are; its name keeps the standard
// content type (application/grpc+proto), so servers see an ordinary protobuf call.
type passthrough struct{}

func (passthrough) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (passthrough) Unmarshal(data []byte, v any) error {
	p := v.(*[]byte)
	*p = append((*p)[:0], data...)
	return nil
}
func (passthrough) Name() string { return "proto" }

type result struct {
	RPS      float64 `json:"rps"`
	P50Ms    float64 `json:"p50_ms"`
	P99Ms    float64 `json:"p99_ms"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
}

func main() {
	target := flag.String("target", "127.0.0.1:8081", "host:port")
	method := flag.String("method", "/inference.GRPCInferenceService/ModelInfer", "full method")
	requestPath := flag.String("request", "", "file with the serialized request message")
	conns := flag.Int("c", 1, "connections, one call in flight on each")
	duration := flag.Duration("d", 5*time.Second, "how long to measure")
	warmup := flag.Duration("warmup", 0, "calls made before measuring, not counted")
	flag.Parse()
	request, err := os.ReadFile(*requestPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "grpcload:", err)
		os.Exit(2)
	}
	clients := make([]*grpc.ClientConn, *conns)
	for i := range clients {
		clients[i], err = grpc.NewClient(*target,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodec(passthrough{})))
		if err != nil {
			fmt.Fprintln(os.Stderr, "grpcload:", err)
			os.Exit(2)
		}
		defer clients[i].Close()
	}
	run := func(d time.Duration, record bool) result {
		var mu sync.Mutex
		var latencies []time.Duration
		var res result
		var wg sync.WaitGroup
		start := time.Now()
		deadline := start.Add(d)
		for _, conn := range clients {
			wg.Add(1)
			go func(conn *grpc.ClientConn) {
				defer wg.Done()
				own := make([]time.Duration, 0, 4096)
				errors, first := 0, ""
				for time.Now().Before(deadline) {
					req, reply := request, []byte(nil)
					t := time.Now()
					if err := conn.Invoke(context.Background(), *method, &req, &reply); err != nil {
						errors++
						if first == "" {
							first = err.Error()
						}
						continue
					}
					own = append(own, time.Since(t))
				}
				mu.Lock()
				latencies = append(latencies, own...)
				res.Errors += errors
				if res.FirstErr == "" {
					res.FirstErr = first
				}
				mu.Unlock()
			}(conn)
		}
		wg.Wait()
		if !record {
			return res
		}
		elapsed := time.Since(start)
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		res.Requests = len(latencies)
		res.RPS = float64(len(latencies)) / elapsed.Seconds()
		if n := len(latencies); n > 0 {
			res.P50Ms = float64(latencies[n/2].Microseconds()) / 1000
			res.P99Ms = float64(latencies[n*99/100].Microseconds()) / 1000
		}
		return res
	}
	if *warmup > 0 {
		run(*warmup, false)
	}
	out, _ := json.Marshal(run(*duration, true))
	fmt.Println(string(out))
}
