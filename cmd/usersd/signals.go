package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// withSignals returns two contexts: soft ends at the first SIGINT or
// SIGTERM (or when parent ends), and starts a graceful shutdown; hard ends
// at a second signal, and cuts that shutdown short. stop releases the
// signals and the goroutine that watches them.
func withSignals(parent context.Context) (soft, hard context.Context, stop func()) {
	soft, cancelSoft := context.WithCancel(parent)
	// A parent that ends (a test, say) asks for a graceful stop, not a hard one.
	hard, cancelHard := context.WithCancel(context.WithoutCancel(parent))
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for first := true; ; first = false {
			select {
			case <-sigs:
				if !first {
					cancelHard()
					return
				}
				cancelSoft()
			case <-done:
				return
			}
		}
	})
	return soft, hard, func() {
		signal.Stop(sigs)
		close(done)
		wg.Wait()
		cancelSoft()
		cancelHard()
	}
}
