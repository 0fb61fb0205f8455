// Package proc starts the processes of a benchmark run and reads what the
// kernel knows about them and the machine: CPU time, resident memory, and
// how idle the CPUs are. It is Linux-only (/proc).
package proc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A Group owns the processes it starts. StopAll stops those still running;
// the harness defers it, so no process outlives a run, whether it ends
// normally, fails or is interrupted. Each process also gets SIGKILL if the
// harness dies without cleaning up (Pdeathsig).
type Group struct {
	mu    sync.Mutex
	procs map[*Proc]struct{}
}

// NewGroup returns an empty Group.
func NewGroup() *Group { return &Group{procs: map[*Proc]struct{}{}} }

// Proc is a process started by a Group.
type Proc struct {
	Name    string
	Started time.Time // just before exec
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	stderr  *tail
	group   *Group
}

// Start starts path with args and env (nil: the harness's environment),
// its stdout going to stdout (nil: discarded). The last lines of its
// stderr are kept for Err.
func (g *Group) Start(name, path string, args, env []string, stdout io.Writer) (*Proc, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = env
	cmd.Stdout = stdout
	p := &Proc{Name: name, cmd: cmd, done: make(chan struct{}), stderr: &tail{max: 8 << 10}, group: g}
	cmd.Stderr = p.stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	g.mu.Lock()
	g.procs[p] = struct{}{}
	g.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Proc) Exited() <-chan struct{} { return p.done }

// Err describes how the process ended, with the end of its stderr.
func (p *Proc) Err() error {
	select {
	case <-p.done:
	default:
		return nil
	}
	msg := strings.TrimSpace(p.stderr.String())
	if p.err == nil {
		return fmt.Errorf("%s exited: %s", p.Name, msg)
	}
	return fmt.Errorf("%s: %w: %s", p.Name, p.err, msg)
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns once the process is gone.
func (p *Proc) Stop(grace time.Duration) {
	defer func() {
		p.group.mu.Lock()
		delete(p.group.procs, p)
		p.group.mu.Unlock()
	}()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Kill sends SIGKILL (a crash: no shutdown of any kind) and returns once
// the process is gone.
func (p *Proc) Kill() {
	defer func() {
		p.group.mu.Lock()
		delete(p.group.procs, p)
		p.group.mu.Unlock()
	}()
	_ = p.cmd.Process.Kill()
	<-p.done
}

// StopAll stops every process still running, all at once.
func (g *Group) StopAll(grace time.Duration) {
	g.mu.Lock()
	ps := make([]*Proc, 0, len(g.procs))
	for p := range g.procs {
		ps = append(ps, p)
	}
	g.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(grace)
		}()
	}
	wg.Wait()
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(b), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// CPU returns the user plus system CPU time the process has used so far,
// all its threads together, at 10 ms resolution.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("proc: malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("proc: short stat")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// Mem is what the kernel reports of a process's memory, in KiB.
type Mem struct {
	RSS  int64 // resident set now (VmRSS)
	HWM  int64 // largest resident set so far (VmHWM)
	Anon int64 // resident anonymous memory: heap, stacks (RssAnon)
	File int64 // resident pages of mapped files, mostly the binary (RssFile)
}

// Memory returns the memory of the process.
func Memory(pid int) (Mem, error) {
	var m Mem
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		case "RssAnon":
			dst = &m.Anon
		case "RssFile":
			dst = &m.File
		default:
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return m, fmt.Errorf("proc: %s: %w", k, err)
		}
		*dst = n
	}
	return m, nil
}

// cpuTimes returns the machine's total and idle (idle + iowait) jiffies
// from /proc/stat.
func cpuTimes() (total, idle int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, 0, errors.New("proc: malformed /proc/stat")
	}
	for i, s := range f[1:] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		// guest and guest_nice (fields 9, 10) are already in user and nice.
		if i >= 8 {
			break
		}
		total += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return total, idle, nil
}

// Idle returns the fraction of the machine's CPU time that was idle over
// the next d.
func Idle(ctx context.Context, d time.Duration) (float64, error) {
	t0, i0, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	t1, i1, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	if t1 == t0 {
		return 1, nil
	}
	return float64(i1-i0) / float64(t1-t0), nil
}

// WaitIdle waits until the machine has been at least minIdle idle over
// one second, or until max has passed. It returns the last idle fraction
// seen, how long it waited, and whether the machine was idle enough.
func WaitIdle(ctx context.Context, minIdle float64, max time.Duration) (idle float64, waited time.Duration, ok bool, err error) {
	start := time.Now()
	for {
		idle, err = Idle(ctx, time.Second)
		if err != nil {
			return 0, time.Since(start), false, err
		}
		if idle >= minIdle {
			return idle, time.Since(start), true, nil
		}
		if time.Since(start) >= max {
			return idle, time.Since(start), false, nil
		}
	}
}

// LoadAvg returns the 1-minute load average.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// FreePorts returns n loopback ports that were free a moment ago, for the
// servers a run starts.
func FreePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
