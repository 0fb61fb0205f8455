// Command usersallocs measures a running usersd's own allocations, bytes
// allocated and CPU per GetUser, over HTTP and over gRPC, from the
// counters of its admin port's /metrics (go_memstats_mallocs_total,
// go_memstats_alloc_bytes_total, process_cpu_seconds_total) read before and
// after a fixed number of calls; the allocations of the scrapes themselves
// are measured and taken off. Allocations do not depend on the machine's
// load, so two binaries can be compared on a busy machine; the CPU figure
// does. It creates one user and reads it back, -c clients each on its own
// connection. See docs/performance.md.
//
//	usersallocs -http 127.0.0.1:8080 -grpc 127.0.0.1:9090 -admin 127.0.0.1:9091 -n 15000
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	usersv1 "github.com/usersd/usersd/api/users/v1"
)

func scrape(admin string) map[string]float64 {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		for _, k := range []string{"go_memstats_mallocs_total", "go_memstats_alloc_bytes_total", "process_cpu_seconds_total"} {
			if strings.HasPrefix(l, k+" ") {
				v, _ := strconv.ParseFloat(strings.TrimSpace(l[len(k)+1:]), 64)
				out[k] = v
			}
		}
	}
	return out
}

func main() {
	httpAddr := flag.String("http", "", "usersd's HTTP `address`")
	grpcAddr := flag.String("grpc", "", "usersd's gRPC `address`")
	admin := flag.String("admin", "", "usersd's admin `address` (its /metrics)")
	n := flag.Int("n", 20000, "calls per API")
	c := flag.Int("c", 8, "clients, each on its own connection")
	only := flag.String("only", "", "measure only this API: http or grpc")
	flag.Parse()

	// One user, read back by every call.
	body := []byte(`{"email":"drv` + strconv.FormatInt(time.Now().UnixNano(), 10) + `@example.com","displayName":"D"}`)
	resp, err := http.Post("http://"+*httpAddr+"/v1/users", "application/json", bytes.NewReader(body))
	if err != nil {
		log.Fatal(err)
	}
	var u struct{ Id string }
	json.NewDecoder(resp.Body).Decode(&u)
	resp.Body.Close()
	if u.Id == "" {
		log.Fatal("creating the user: no id in the answer")
	}

	run := func(name string, do func(worker int) func()) {
		if *only != "" && !strings.HasPrefix(name, *only) {
			return
		}
		// Warm up: connections, caches, the first series.
		w := do(0)
		for i := 0; i < 500; i++ {
			w()
		}
		before := scrape(*admin)
		var wg sync.WaitGroup
		per := *n / *c
		start := time.Now()
		for k := 0; k < *c; k++ {
			f := do(k)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					f()
				}
			}()
		}
		wg.Wait()
		el := time.Since(start)
		after := scrape(*admin)
		total := float64(per * *c)
		// The scrapes allocate too: take off what one costs.
		s1 := scrape(*admin)
		s2 := scrape(*admin)
		scr := s2["go_memstats_mallocs_total"] - s1["go_memstats_mallocs_total"]
		scrB := s2["go_memstats_alloc_bytes_total"] - s1["go_memstats_alloc_bytes_total"]
		fmt.Printf("%s: %.1f allocs/req  %.0f B/req  %.1f µs CPU/req  %.0f req/s\n", name,
			(after["go_memstats_mallocs_total"]-before["go_memstats_mallocs_total"]-scr)/total,
			(after["go_memstats_alloc_bytes_total"]-before["go_memstats_alloc_bytes_total"]-scrB)/total,
			(after["process_cpu_seconds_total"]-before["process_cpu_seconds_total"])*1e6/total,
			total/el.Seconds())
	}
	url := "http://" + *httpAddr + "/v1/users/" + u.Id
	run("http GetUser", func(int) func() {
		cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		return func() {
			resp, err := cl.Get(url)
			if err != nil {
				log.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				log.Fatal("GET: ", resp.Status)
			}
		}
	})
	conn, err := grpc.NewClient(*grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	cl := usersv1.NewUserServiceClient(conn)
	req := &usersv1.GetUserRequest{Id: u.Id}
	run("grpc GetUser", func(int) func() {
		return func() {
			if _, err := cl.GetUser(context.Background(), req); err != nil {
				log.Fatal(err)
			}
		}
	})
}
