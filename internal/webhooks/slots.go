package webhooks

import (
	"context"
	"sync"

	"golang.org/x/sync/semaphore"
)

// keyedSlots bounds what is in flight per key: each key has its own slots,
// kept only while someone holds or waits for one.
type keyedSlots struct {
	size int64

	mu sync.Mutex
	m  map[string]*slotsOf
}

// slotsOf are the slots of one key, and how many hold or wait for one.
type slotsOf struct {
	sem   *semaphore.Weighted
	users int
}

func newKeyedSlots(size int) *keyedSlots {
	return &keyedSlots{size: int64(size), m: map[string]*slotsOf{}}
}

// acquire waits, with ctx, for a slot of key, and returns the function
// that gives it back.
func (k *keyedSlots) acquire(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	s := k.m[key]
	if s == nil {
		s = &slotsOf{sem: semaphore.NewWeighted(k.size)}
		k.m[key] = s
	}
	s.users++
	k.mu.Unlock()
	if err := s.sem.Acquire(ctx, 1); err != nil {
		k.leave(key, s)
		return nil, err
	}
	return func() {
		s.sem.Release(1)
		k.leave(key, s)
	}, nil
}

// leave counts one holder or waiter of key's slots out, and forgets them
// when none is left.
func (k *keyedSlots) leave(key string, s *slotsOf) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.users--; s.users == 0 {
		delete(k.m, key)
	}
}

// len is how many keys have slots in use or waited for.
func (k *keyedSlots) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
